/**
 * Cache of downloaded models in the Cache API, on hosts that have one (browsers in secure
 * contexts, their workers, and Deno). Entries are keyed by the model's URL and never expire;
 * deleteCachedModel and clearModelCache remove them.
 */

import { env } from "./env.js";
import { optionMismatch } from "./errors.js";
import type { SourceBytes, SourceOptions } from "./source.js";

import { MODEL_CACHE_NAME, type CachedModel } from "./model-cache-api.js";

/** Header of a stored entry that contains the time it was stored, as an ISO 8601 string. */
const STORED_AT_HEADER = "x-dormant-stored-at";


/** A download, and whether its response allows storing it (no `Cache-Control: no-store`). */
export interface Download extends SourceBytes {
  storable: boolean;
}

function errorText(error: unknown): string {
  if (error instanceof Error) return error.name && error.name !== "Error" ? `${error.name}: ${error.message}` : error.message;
  return String(error);
}


/**
 * Reads a model through the cache: a stored entry is read with "read" progress and no request;
 * otherwise `download` runs and its bytes are stored. A cache that cannot be read or written
 * never fails the load, and the progress event's `warning` reports the failure instead.
 */
export async function readThroughCache(
  url: URL, file: string, options: SourceOptions, download: () => Promise<Download>,
): Promise<SourceBytes> {
  const warn = (loaded: number, total: number | undefined, warning: string) =>
    options.onProgress?.({ phase: "download", file, loaded, total, warning });
  try {
    const bytes = await readCachedBytes(url, file, options);
    if (bytes !== undefined) return { bytes, name: url.href };
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    warn(0, undefined, `model cache: ${url.href}: reading the cached copy failed (${errorText(error)}); downloading it`);
  }

  const result = await download();
  if (!result.storable) return { bytes: result.bytes, name: result.name };
  const size = result.bytes.byteLength;
  try {
    const cache = await caches.open(MODEL_CACHE_NAME);
    const headers = {
      "content-type": "application/octet-stream",
      "content-length": String(size),
      [STORED_AT_HEADER]: new Date().toISOString(),
    };
    // The Response copies the bytes, so the buffer stays the caller's.
    await cache.put(url.href, new Response(result.bytes as Uint8Array<ArrayBuffer>, { headers }));
  } catch (error) {
    warn(size, size, `model cache: ${url.href}: storing ${size} bytes failed (${errorText(error)}); the model loaded but is not cached`);
  }
  return { bytes: result.bytes, name: result.name };
}

/** Streams a stored entry into one buffer; undefined when there is none or it is damaged. */
async function readCachedBytes(url: URL, file: string, options: SourceOptions): Promise<Uint8Array | undefined> {
  const cache = await caches.open(MODEL_CACHE_NAME);
  const response = await cache.match(url.href);
  if (response === undefined || response.body === null) return undefined;
  const total = storedSize(response);
  if (total === undefined) {
    await cache.delete(url.href);
    return undefined;
  }
  const bytes = new Uint8Array(total);
  let loaded = 0;
  options.onProgress?.({ phase: "read", file, loaded, total });
  const reader = response.body.getReader();
  for (;;) {
    if (options.signal?.aborted) {
      await reader.cancel();
      throw options.signal.reason;
    }
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.byteLength > total) break;
    bytes.set(value, loaded);
    loaded += value.byteLength;
    options.onProgress?.({ phase: "read", file, loaded, total });
  }
  if (loaded === total) return bytes;
  // An entry whose body does not match its stored size is dropped and downloaded again.
  await reader.cancel();
  await cache.delete(url.href);
  return undefined;
}

function storedSize(response: Response): number | undefined {
  const header = response.headers.get("content-length")?.trim();
  return header !== undefined && /^\d+$/.test(header) ? Number(header) : undefined;
}

/** Resolves a URL against the page's address, as loadModel does. */
function toCacheKey(url: string | URL, where: string): string {
  if (url instanceof URL) return url.href;
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  try {
    return new URL(url, base).href;
  } catch {
    return optionMismatch(where, {
      source: "option url", field: "url", actual: JSON.stringify(url), expected: "an absolute URL, or a path relative to the page",
    });
  }
}

/**
 * Lists the models in the cache, in the order they were stored. Returns an empty list on hosts
 * without the Cache API (Node).
 */
export async function listCachedModels(): Promise<CachedModel[]> {
  if (!env.hasCacheStorage || !(await caches.has(MODEL_CACHE_NAME))) return [];
  const cache = await caches.open(MODEL_CACHE_NAME);
  const models: CachedModel[] = [];
  for (const request of await cache.keys()) {
    const response = await cache.match(request);
    if (response === undefined) continue;
    const bytes = storedSize(response) ?? (await response.blob()).size;
    models.push({ url: request.url, bytes, storedAt: response.headers.get(STORED_AT_HEADER) ?? "" });
  }
  return models;
}

/**
 * Deletes the cached copy of the model at `url` (resolved against the page like loadModel's
 * source). Returns true when there was one; false also on hosts without the Cache API.
 */
export async function deleteCachedModel(url: string | URL): Promise<boolean> {
  const key = toCacheKey(url, "deleteCachedModel");
  if (!env.hasCacheStorage || !(await caches.has(MODEL_CACHE_NAME))) return false;
  const cache = await caches.open(MODEL_CACHE_NAME);
  return cache.delete(key);
}

/** Deletes every cached model and returns how many there were (0 on hosts without the Cache API). */
export async function clearModelCache(): Promise<number> {
  if (!env.hasCacheStorage || !(await caches.has(MODEL_CACHE_NAME))) return 0;
  const count = (await (await caches.open(MODEL_CACHE_NAME)).keys()).length;
  await caches.delete(MODEL_CACHE_NAME);
  return count;
}
