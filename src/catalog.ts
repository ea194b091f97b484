/**
 * Model catalog and name resolution. `models/catalog.json` maps a model name to the files
 * that make it up:
 *
 *   { "version": 1,
 *     "models": { "<name>": {
 *       "family": "llama", "description": "...", "homepage": "https://..." (optional),
 *       "files": [ { "role": "model" | "tokenizer", "name": "<file name>", "url": "https://...",
 *                    "sha256": "<64 hex digits>" | null, "size": <bytes> | null } ],
 *       "alternatives": [ { "name": "<file name>.gguf", "sha256": ..., "size": ... } ] (optional) } } }
 *
 * `files` contains exactly one "model" file and at most one "tokenizer" file. An alternative is a
 * single GGUF file with the same model and its vocabulary. It is used when found in a local
 * directory but never downloaded, because it has no URL.
 */

import { FormatError, ModelSourceError, describeMismatch } from "./errors.js";
import { type DownloadProgress, downloadFile } from "./download.js";
import { getEnv, joinPath, pathDelimiter, readFileBytes, statPath, urlToPath, userCacheDirectory } from "./io.js";

export type CatalogFileRole = "model" | "tokenizer";

/** One downloadable file of a catalog model. */
export interface CatalogFile {
  role: CatalogFileRole;
  /** Plain file name (no directory), used in search and cache directories. */
  name: string;
  url: string;
  /** 64 lowercase hex digits, or null when unknown (downloads then need `allowUnverified`). */
  sha256: string | null;
  /** Size in bytes, or null when unknown. */
  size: number | null;
}

/** A single-file GGUF form of a catalog model, used only when found locally. */
export interface CatalogAlternative {
  name: string;
  sha256: string | null;
  size: number | null;
}

export interface CatalogModel {
  family: string;
  description: string;
  homepage?: string;
  files: CatalogFile[];
  alternatives: CatalogAlternative[];
}

/** A validated catalog. */
export interface Catalog {
  version: 1;
  models: Map<string, CatalogModel>;
  /** Path or label of the catalog, for error messages. */
  source: string;
}

const DEFAULT_CATALOG_LABEL = "models/catalog.json";
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

let defaultCatalog: Promise<Catalog> | undefined;

/**
 * Loads and validates a catalog: the package's models/catalog.json by default, a JSON file
 * when `source` is a path, or an already parsed object. Throws FormatError naming the field,
 * the value found and the value expected.
 */
export async function loadCatalog(source?: string | object, label?: string): Promise<Catalog> {
  if (source === undefined) {
    defaultCatalog ??= loadDefaultCatalog().catch((error: unknown) => {
      defaultCatalog = undefined;
      throw error;
    });
    return defaultCatalog;
  }
  if (typeof source === "string") return parseCatalog(await readFileBytes(source, "loadCatalog"), label ?? source);
  return validateCatalog(source, label ?? "catalog object");
}

async function loadDefaultCatalog(): Promise<Catalog> {
  // The CLI bundle lives in dist/, one level below the package root like src/, so this path holds for both.
  const url = new URL("../models/catalog.json", import.meta.url);
  if (url.protocol === "file:") return parseCatalog(await readFileBytes(await urlToPath(url), "loadCatalog"), DEFAULT_CATALOG_LABEL);
  const response = await fetch(url);
  if (!response.ok) {
    const details = { source: url.href, field: "HTTP status", actual: String(response.status), expected: "200" };
    throw new ModelSourceError(describeMismatch("loadCatalog", details), details);
  }
  return parseCatalog(new Uint8Array(await response.arrayBuffer()), DEFAULT_CATALOG_LABEL);
}

function parseCatalog(bytes: Uint8Array, label: string): Catalog {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new FormatError(`loadCatalog: ${label}: invalid JSON (${reason})`, { source: label });
  }
  return validateCatalog(parsed, label);
}

function show(value: unknown): string {
  if (value === undefined) return "missing";
  if (Array.isArray(value)) return "an array";
  if (value !== null && typeof value === "object") return "an object";
  return JSON.stringify(value);
}

function schemaError(label: string, field: string, value: unknown, expected: string): FormatError {
  const details = { source: label, field, actual: show(value), expected };
  return new FormatError(describeMismatch("loadCatalog", details), details);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function checkKeys(label: string, field: string, value: Record<string, unknown>, allowed: string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw schemaError(label, `${field}.${key}`, value[key], `no such key (allowed: ${allowed.join(", ")})`);
  }
}

function requireString(label: string, field: string, value: unknown): string {
  if (typeof value !== "string" || value === "") throw schemaError(label, field, value, "a non-empty string");
  return value;
}

function requireFileName(label: string, field: string, value: unknown): string {
  if (typeof value !== "string" || !SAFE_NAME.test(value)) {
    throw schemaError(label, field, value, "a file name of letters, digits, '.', '_' or '-' without a directory");
  }
  return value;
}

function requireSha256(label: string, field: string, value: unknown): string | null {
  if (value === null) return null;
  if (typeof value !== "string" || !SHA256_HEX.test(value)) throw schemaError(label, field, value, "64 lowercase hex digits or null");
  return value;
}

function requireSize(label: string, field: string, value: unknown): number | null {
  if (value === null) return null;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) throw schemaError(label, field, value, "a positive integer or null");
  return value;
}

function requireUrl(label: string, field: string, value: unknown): string {
  const text = requireString(label, field, value);
  let protocol: string;
  try {
    protocol = new URL(text).protocol;
  } catch {
    protocol = "";
  }
  if (protocol !== "https:" && protocol !== "http:") throw schemaError(label, field, value, "an http or https URL");
  return text;
}

/** Checks a parsed catalog against the schema in the file header and returns it in typed form. */
export function validateCatalog(value: unknown, label = "catalog object"): Catalog {
  if (!isRecord(value)) throw schemaError(label, "catalog", value, "an object with version and models");
  checkKeys(label, "catalog", value, ["version", "models"]);
  if (value.version !== 1) throw schemaError(label, "version", value.version, "1");
  if (!isRecord(value.models)) throw schemaError(label, "models", value.models, "an object mapping model names to models");

  const models = new Map<string, CatalogModel>();
  for (const [name, entry] of Object.entries(value.models)) {
    const field = `models.${name}`;
    if (!SAFE_NAME.test(name) || /\.(gguf|bin)$/i.test(name)) {
      throw schemaError(label, "models", name, "model names of letters, digits, '.', '_' or '-', not ending in .gguf or .bin");
    }
    models.set(name, validateModel(label, field, entry));
  }
  return { version: 1, models, source: label };
}

function validateModel(label: string, field: string, entry: unknown): CatalogModel {
  if (!isRecord(entry)) throw schemaError(label, field, entry, "an object with family, description and files");
  checkKeys(label, field, entry, ["family", "description", "homepage", "files", "alternatives"]);
  const model: CatalogModel = {
    family: requireString(label, `${field}.family`, entry.family),
    description: requireString(label, `${field}.description`, entry.description),
    files: [],
    alternatives: [],
  };
  if (entry.homepage !== undefined) model.homepage = requireUrl(label, `${field}.homepage`, entry.homepage);

  if (!Array.isArray(entry.files) || entry.files.length === 0) throw schemaError(label, `${field}.files`, entry.files, "a non-empty array");
  entry.files.forEach((file: unknown, index: number) => model.files.push(validateFile(label, `${field}.files[${index}]`, file)));
  for (const role of ["model", "tokenizer"] as const) {
    const count = model.files.filter((file) => file.role === role).length;
    const expected = role === "model" ? "exactly 1" : "at most 1";
    if (count > 1 || (role === "model" && count === 0)) throw schemaError(label, `${field}.files`, `${count} files of role "${role}"`, expected);
  }

  if (entry.alternatives !== undefined) {
    if (!Array.isArray(entry.alternatives)) throw schemaError(label, `${field}.alternatives`, entry.alternatives, "an array");
    entry.alternatives.forEach((alternative: unknown, index: number) => {
      model.alternatives.push(validateAlternative(label, `${field}.alternatives[${index}]`, alternative));
    });
  }
  return model;
}

function validateFile(label: string, field: string, file: unknown): CatalogFile {
  if (!isRecord(file)) throw schemaError(label, field, file, "an object with role, name, url, sha256 and size");
  checkKeys(label, field, file, ["role", "name", "url", "sha256", "size"]);
  if (file.role !== "model" && file.role !== "tokenizer") throw schemaError(label, `${field}.role`, file.role, '"model" or "tokenizer"');
  return {
    role: file.role,
    name: requireFileName(label, `${field}.name`, file.name),
    url: requireUrl(label, `${field}.url`, file.url),
    sha256: requireSha256(label, `${field}.sha256`, file.sha256),
    size: requireSize(label, `${field}.size`, file.size),
  };
}

function validateAlternative(label: string, field: string, alternative: unknown): CatalogAlternative {
  if (!isRecord(alternative)) throw schemaError(label, field, alternative, "an object with name, sha256 and size");
  checkKeys(label, field, alternative, ["name", "sha256", "size"]);
  const name = requireFileName(label, `${field}.name`, alternative.name);
  if (!name.toLowerCase().endsWith(".gguf")) throw schemaError(label, `${field}.name`, name, "a file name ending in .gguf");
  return {
    name,
    sha256: requireSha256(label, `${field}.sha256`, alternative.sha256),
    size: requireSize(label, `${field}.size`, alternative.size),
  };
}

export interface ResolveOptions {
  /** A loaded catalog, a path to a catalog file, or a catalog object. Default models/catalog.json. */
  catalog?: Catalog | string | object;
  /** Directories searched first. Default the DORMANT_MODELS variable split at pathDelimiter. */
  searchDirectories?: string[];
  /** Default userCacheDirectory(). Downloads go to `<cacheDirectory>/<model name>/`. */
  cacheDirectory?: string;
  /** Whether a model missing locally is downloaded. Default true. */
  download?: boolean;
  /** Allows downloading catalog files whose sha256 is null. Default false. */
  allowUnverified?: boolean;
  onProgress?: (progress: DownloadProgress) => void;
  signal?: AbortSignal;
  fetch?: typeof globalThis.fetch;
  /** Public function name that starts every error message. Default "loadModel". */
  where?: string;
}

export interface ResolvedModel {
  modelPath: string;
  /** Present when the model is a llama2.c checkpoint with a separate tokenizer file. */
  tokenizerPath?: string;
  /** Catalog name, absent when the input was a path. */
  name?: string;
  /** True when at least one file was downloaded by this call. */
  downloaded: boolean;
}

function isCatalog(value: unknown): value is Catalog {
  return isRecord(value) && value.models instanceof Map && typeof value.source === "string";
}

/** Returns true when a model name is a path (it has a separator or a .gguf/.bin ending), not a catalog name. */
export function isPathLike(value: string): boolean {
  return value.includes("/") || value.includes("\\") || /\.(gguf|bin)$/i.test(value);
}

/** Returns the folders listed in the DORMANT_MODELS variable, the default model search directories. */
export function modelSearchDirectories(): string[] {
  return (getEnv("DORMANT_MODELS") ?? "").split(pathDelimiter).filter((directory) => directory !== "");
}

/**
 * Finds a model's files: a path is returned as is, and a catalog name is looked up in the
 * search directories, then the cache, and is downloaded into the cache as a last resort.
 * Local files are trusted after a size check, and downloads are checked against their sha256.
 */
export async function resolveModel(nameOrPath: string, options: ResolveOptions = {}): Promise<ResolvedModel> {
  const where = options.where ?? "loadModel";
  if (isPathLike(nameOrPath)) {
    const info = await statPath(nameOrPath, where);
    if (info === undefined) throw new ModelSourceError(`${where}: ${nameOrPath}: file not found`, { source: nameOrPath });
    if (info.kind !== "file") throw new ModelSourceError(`${where}: ${nameOrPath}: is a ${info.kind}, expected a .gguf or .bin file`, { source: nameOrPath });
    return { modelPath: nameOrPath, downloaded: false };
  }

  const catalog = isCatalog(options.catalog) ? options.catalog : await loadCatalog(options.catalog);
  const entry = catalog.models.get(nameOrPath);
  if (entry === undefined) {
    const known = [...catalog.models.keys()].join(", ");
    throw new ModelSourceError(`${where}: model "${nameOrPath}" is not in the catalog (${catalog.source}), expected one of: ${known}, or a path to a .gguf or .bin file`, {
      source: catalog.source,
      field: "model",
      actual: nameOrPath,
      expected: known,
    });
  }

  const searchDirectories = options.searchDirectories ?? modelSearchDirectories();
  for (const directory of searchDirectories) {
    const found = await findInDirectory(directory, entry, where);
    if (found !== undefined) return { ...found, name: nameOrPath, downloaded: false };
  }

  const modelDirectory = joinPath(options.cacheDirectory ?? (await userCacheDirectory()), nameOrPath);
  const cached = await findInDirectory(modelDirectory, entry, where);
  if (cached !== undefined) return { ...cached, name: nameOrPath, downloaded: false };

  if (options.download === false) {
    const places = [...searchDirectories, modelDirectory].join(", ");
    throw new ModelSourceError(`${where}: model "${nameOrPath}": files not found in ${places} and downloading is disabled`, {
      source: nameOrPath,
    });
  }
  await downloadMissing(modelDirectory, entry, options, where);
  return { ...pathsIn(modelDirectory, entry), name: nameOrPath, downloaded: true };
}

function pathsIn(directory: string, entry: CatalogModel): { modelPath: string; tokenizerPath?: string } {
  const paths: { modelPath: string; tokenizerPath?: string } = { modelPath: "" };
  for (const file of entry.files) {
    if (file.role === "model") paths.modelPath = joinPath(directory, file.name);
    else paths.tokenizerPath = joinPath(directory, file.name);
  }
  return paths;
}

/** Returns the file's path after checking its size, or undefined when the file is absent. */
async function findFile(directory: string, name: string, size: number | null, where: string): Promise<string | undefined> {
  const path = joinPath(directory, name);
  const info = await statPath(path, where);
  if (info === undefined || info.kind !== "file") return undefined;
  if (size !== null && info.size !== size) {
    const details = { source: path, field: "size", actual: `${info.size} bytes`, expected: `${size} bytes` };
    throw new ModelSourceError(describeMismatch(where, details, "truncated or a different version, so replace or delete the file"), details);
  }
  return path;
}

/** Looks for all catalog files of a model in one directory, then for a GGUF alternative. */
async function findInDirectory(directory: string, entry: CatalogModel, where: string): Promise<{ modelPath: string; tokenizerPath?: string } | undefined> {
  const found: (string | undefined)[] = [];
  for (const file of entry.files) found.push(await findFile(directory, file.name, file.size, where));
  if (found.every((path) => path !== undefined)) return pathsIn(directory, entry);

  for (const alternative of entry.alternatives) {
    const path = await findFile(directory, alternative.name, alternative.size, where);
    if (path !== undefined) return { modelPath: path };
  }
  return undefined;
}

/** Downloads the catalog files absent from the cache directory. Files without a sha256 need `allowUnverified`. */
async function downloadMissing(directory: string, entry: CatalogModel, options: ResolveOptions, where: string): Promise<void> {
  const missing: CatalogFile[] = [];
  for (const file of entry.files) {
    if ((await findFile(directory, file.name, file.size, where)) === undefined) missing.push(file);
  }
  if (!options.allowUnverified) {
    const unverified = missing.find((file) => file.sha256 === null);
    if (unverified !== undefined) {
      const details = { source: unverified.url, field: "sha256", actual: "null in the catalog", expected: "a checksum" };
      throw new ModelSourceError(describeMismatch(where, details, "downloads without a checksum need the allowUnverified option"), details);
    }
  }
  for (const file of missing) {
    try {
      await downloadFile(file.url, joinPath(directory, file.name), {
        sha256: file.sha256,
        size: file.size,
        onProgress: options.onProgress,
        signal: options.signal,
        fetch: options.fetch,
        where,
        file: file.name,
      });
    } catch (error) {
      // A failed request (no network, host not found) does not mention the local search that
      // came first, so the message adds where the files can be put instead.
      if (error instanceof ModelSourceError && /request failed/.test(error.message)) {
        throw new ModelSourceError(
          `${error.message}; no local copy was found either: put ${entry.files.map((f) => f.name).join(" and ")} into a folder listed in DORMANT_MODELS`,
          { source: error.source, field: error.field, actual: error.actual, expected: error.expected },
        );
      }
      throw error;
    }
  }
}
