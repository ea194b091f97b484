/**
 * The public face of the model cache. The implementation in src/model-cache.ts loads on first
 * use, so a page that never downloads a model does not carry it in its startup JavaScript.
 */

import { env } from "./env.js";

/** Name of dormant's cache in CacheStorage. The version changes when the stored entry layout does. */
export const MODEL_CACHE_NAME = "dormant-models-v1";

/** One model in the cache. */
export interface CachedModel {
  /** Absolute URL the model was downloaded from, the cache key. */
  url: string;
  /** Size of the stored model file. */
  bytes: number;
  /** Time the model was stored, as an ISO 8601 string. */
  storedAt: string;
}

/** Returns true when a URL can be a cache key: the Cache API stores http and https requests only. */
export function isCacheableUrl(url: URL): boolean {
  return env.hasCacheStorage && (url.protocol === "http:" || url.protocol === "https:");
}

/** Lists the cached models in the order they were stored; an empty list where there is no Cache API. */
export async function listCachedModels(): Promise<CachedModel[]> {
  return (await import("./model-cache.js")).listCachedModels();
}

/** Deletes the cached model of `url`; returns whether there was one. */
export async function deleteCachedModel(url: string | URL): Promise<boolean> {
  return (await import("./model-cache.js")).deleteCachedModel(url);
}

/** Deletes every cached model; returns how many there were. */
export async function clearModelCache(): Promise<number> {
  return (await import("./model-cache.js")).clearModelCache();
}
