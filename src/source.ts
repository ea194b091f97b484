/**
 * Model bytes from sources that are not paths: a URL (fetched and streamed, with progress),
 * a Blob or File, or bytes already in memory. Paths and file: URLs are read through io.ts,
 * the host's only file-system access.
 */

import { ModelSourceError, describeMismatch, optionMismatch } from "./errors.js";
import { env } from "./env.js";
import { readFileBytes, urlToPath } from "./io.js";

/** Anything loadModel accepts: a catalog name or path (Node and Deno), a URL, a Blob or File, or bytes. */
export type ModelSource = string | URL | Blob | ArrayBuffer | ArrayBufferView;

/** Progress of reading a source; `total` is absent when the server sends no usable Content-Length. */
export interface SourceProgress {
  phase: "download" | "read";
  /** Name of the file (the URL's last path component, or the File's name), for display. */
  file: string;
  loaded: number;
  total?: number;
}

export interface SourceOptions {
  /** Public function name that starts every error message. Default "loadModel". */
  where?: string;
  onProgress?: (progress: SourceProgress) => void;
  signal?: AbortSignal;
}

/** Bytes of a source, and the name errors and Model.source report for it. */
export interface SourceBytes {
  bytes: Uint8Array;
  /** URL, File name, or "<bytes>". */
  name: string;
}

/** Returns true when `value` starts with a URL scheme that fetch or io.ts can read. */
export function isUrlString(value: string): boolean {
  return /^(https?|blob|data|file):/i.test(value);
}

/**
 * Returns true when a string source names a path or catalog model, read with the file system.
 * Hosts without one (browsers, workers) resolve every string as a URL, relative to the page.
 */
export function isPathSource(source: ModelSource): source is string {
  return typeof source === "string" && env.hasFileSystem && !isUrlString(source);
}

function fileNameOf(url: URL): string {
  const parts = url.pathname.split("/");
  const last = parts[parts.length - 1];
  return last === "" ? url.href : decodeURIComponent(last);
}

function sizeError(where: string, url: string, actual: string, expected: string, cause: string): ModelSourceError {
  const details = { source: url, field: "body length", actual, expected };
  return new ModelSourceError(describeMismatch(where, details, cause), details);
}

/** Resolves a string against the page's address, the way fetch() would. */
function toUrl(source: string | URL, where: string): URL {
  if (source instanceof URL) return source;
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  try {
    return new URL(source, base);
  } catch {
    return optionMismatch(where, {
      source: "option source", field: "source", actual: JSON.stringify(source), expected: "an absolute URL, or a path relative to the page",
    });
  }
}

/**
 * Reads a model source into memory. Strings and URLs are fetched (file: URLs are read from
 * disk where a file system exists); Blobs are streamed; ArrayBuffers and views are wrapped
 * without copying.
 */
export async function readModelSource(source: ModelSource, options: SourceOptions = {}): Promise<SourceBytes> {
  const where = options.where ?? "loadModel";
  if (source instanceof Uint8Array) return { bytes: source, name: "<bytes>" };
  if (source instanceof ArrayBuffer) return { bytes: new Uint8Array(source), name: "<bytes>" };
  if (ArrayBuffer.isView(source)) {
    return { bytes: new Uint8Array(source.buffer, source.byteOffset, source.byteLength), name: "<bytes>" };
  }
  if (typeof Blob === "function" && source instanceof Blob) return readBlob(source, where, options);
  if (typeof source === "string" || source instanceof URL) {
    const url = toUrl(source, where);
    if (url.protocol === "file:" && env.hasFileSystem) {
      const path = await urlToPath(url);
      const bytes = await readFileBytes(path, where);
      options.onProgress?.({ phase: "read", file: fileNameOf(url), loaded: bytes.byteLength, total: bytes.byteLength });
      return { bytes, name: path };
    }
    return fetchBytes(url, where, options);
  }
  return optionMismatch(where, {
    source: "option source", field: "source", actual: describeValue(source),
    expected: "a path or catalog name, a URL, a Blob or File, an ArrayBuffer or a Uint8Array",
  });
}

/** Names a value's type for an error message: "a number", "an object (Map)", "undefined". */
function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value !== "object") return `a ${typeof value}`;
  const constructorName = (value as object).constructor?.name;
  return constructorName ? `an object (${constructorName})` : "an object";
}

/** Streams a Blob so large files report progress while they are read. */
async function readBlob(blob: Blob, where: string, options: SourceOptions): Promise<SourceBytes> {
  const file = (blob as { name?: unknown }).name;
  const name = typeof file === "string" && file !== "" ? file : "<blob>";
  const bytes = new Uint8Array(blob.size);
  let loaded = 0;
  options.onProgress?.({ phase: "read", file: name, loaded, total: blob.size });
  const reader = blob.stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.byteLength > bytes.byteLength) {
      await reader.cancel();
      throw sizeError(where, name, `more than ${blob.size} bytes`, `${blob.size} bytes`, "the Blob changed while it was read");
    }
    bytes.set(value, loaded);
    loaded += value.byteLength;
    options.onProgress?.({ phase: "read", file: name, loaded, total: blob.size });
  }
  if (loaded !== blob.size) {
    throw sizeError(where, name, `${loaded} bytes`, `${blob.size} bytes`, "the Blob changed while it was read");
  }
  return { bytes, name };
}

/** Returns the body size from Content-Length, or undefined when absent or not the decoded size. */
function contentLength(response: Response): number | undefined {
  const header = response.headers.get("content-length");
  const encoding = response.headers.get("content-encoding");
  // With a Content-Encoding the header counts compressed bytes, but the body arrives decoded.
  if (header === null || !/^\d+$/.test(header.trim()) || (encoding !== null && encoding.trim().toLowerCase() !== "identity")) return undefined;
  return Number(header.trim());
}

/** Fetches a URL and streams its body into one buffer, sized from Content-Length when known. */
async function fetchBytes(url: URL, where: string, options: SourceOptions): Promise<SourceBytes> {
  const href = url.href;
  const file = fileNameOf(url);
  let response: Response;
  try {
    response = await fetch(url, { signal: options.signal });
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    const cause = (error as { cause?: unknown }).cause;
    const text = cause instanceof Error ? cause.message : error instanceof Error ? error.message : String(error);
    throw new ModelSourceError(`${where}: ${href}: request failed: ${text}`, { source: href });
  }
  if (!response.ok) {
    void response.body?.cancel();
    const details = { source: href, field: "HTTP status", actual: `${response.status}${response.statusText ? ` ${response.statusText}` : ""}`, expected: "200" };
    throw new ModelSourceError(describeMismatch(where, details), details);
  }

  const total = contentLength(response);
  options.onProgress?.({ phase: "download", file, loaded: 0, total });
  if (response.body === null) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    options.onProgress?.({ phase: "download", file, loaded: bytes.byteLength, total });
    return { bytes, name: href };
  }

  // A known size fills one buffer in place; otherwise chunks are kept and joined at the end.
  const whole = total === undefined ? undefined : new Uint8Array(total);
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  const reader = response.body.getReader();
  for (;;) {
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = await reader.read();
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      const text = error instanceof Error ? error.message : String(error);
      throw new ModelSourceError(`${where}: ${href}: download stopped after ${loaded} bytes: ${text}`, { source: href });
    }
    if (result.done) break;
    const chunk = result.value;
    if (whole !== undefined) {
      if (loaded + chunk.byteLength > whole.byteLength) {
        await reader.cancel();
        throw sizeError(where, href, `more than ${total} bytes`, `${total} bytes`, "Content-Length");
      }
      whole.set(chunk, loaded);
    } else {
      chunks.push(chunk);
    }
    loaded += chunk.byteLength;
    options.onProgress?.({ phase: "download", file, loaded, total });
  }
  if (whole !== undefined) {
    if (loaded !== whole.byteLength) throw sizeError(where, href, `${loaded} bytes`, `${total} bytes`, "Content-Length; connection closed early");
    return { bytes: whole, name: href };
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { bytes, name: href };
}
