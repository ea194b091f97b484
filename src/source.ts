/**
 * Model bytes from sources that are not paths: a URL (fetched and streamed, with progress),
 * a Blob or File, or bytes already in memory. Paths and file: URLs are read through io.ts,
 * the host's only file-system access.
 */

import { ModelSourceError, describeMismatch, optionMismatch } from "./errors.js";
import { env } from "./env.js";
import { readFileBytes, urlToPath } from "./io.js";
import { isCacheableUrl } from "./model-cache-api.js";
import type { Download } from "./model-cache.js";

/** Anything loadModel accepts: a catalog name or path (Node and Deno), a URL, a Blob or File, or bytes. */
export type ModelSource = string | URL | Blob | ArrayBuffer | ArrayBufferView;

/** Progress of reading a source; `total` is absent when the server sends no usable Content-Length. */
export interface SourceProgress {
  phase: "download" | "read";
  /** Name of the file (the URL's last path component, or the File's name), for display. */
  file: string;
  loaded: number;
  total?: number;
  /**
   * Failure of the model cache, set on an extra event: the cached copy could not be read (the
   * model is downloaded) or the download could not be stored (the model loads uncached).
   */
  warning?: string;
}

export interface SourceOptions {
  /** Public function name that starts every error message. Default "loadModel". */
  where?: string;
  onProgress?: (progress: SourceProgress) => void;
  signal?: AbortSignal;
  /**
   * Reads http(s) URLs through the model cache (src/model-cache.ts). Default true; ignored on
   * hosts without the Cache API, such as Node.
   */
  cache?: boolean;
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
  if (options.cache !== undefined && typeof options.cache !== "boolean") {
    const value: unknown = options.cache;
    const actual = typeof value === "string" || typeof value === "number" ? JSON.stringify(value) : describeValue(value);
    optionMismatch(where, { source: "option cache", field: "cache", actual, expected: "true or false" });
  }
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
    if (options.cache !== false && isCacheableUrl(url)) {
      const { readThroughCache } = await import("./model-cache.js");
      return readThroughCache(url, fileNameOf(url), options, () => fetchBytes(url, where, options));
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

/** Requests with `Range: bytes=N-` after a download is cut off, when the server accepts ranges. */
const RESUME_ATTEMPTS = 3;
/** Wait before the first resumed request; it doubles for each further one (250, 500, 1000 ms). */
const RESUME_DELAY_MS = 250;

/** Body bytes received so far: one buffer when Content-Length gives the size, else a list of chunks. */
class ReceivedBody {
  loaded = 0;
  private readonly whole: Uint8Array | undefined;
  private readonly chunks: Uint8Array[] = [];

  constructor(readonly total: number | undefined) {
    this.whole = total === undefined ? undefined : new Uint8Array(total);
  }

  /** Appends a chunk; returns false, and keeps nothing, when it would pass the expected size. */
  append(chunk: Uint8Array): boolean {
    if (this.whole !== undefined) {
      if (this.loaded + chunk.byteLength > this.whole.byteLength) return false;
      this.whole.set(chunk, this.loaded);
    } else {
      this.chunks.push(chunk);
    }
    this.loaded += chunk.byteLength;
    return true;
  }

  /** Returns true when the body is complete as far as the size is known. */
  complete(): boolean {
    return this.total === undefined || this.loaded === this.total;
  }

  /** Returns the received bytes as one array. */
  bytes(): Uint8Array {
    if (this.whole !== undefined) return this.whole;
    const bytes = new Uint8Array(this.loaded);
    let offset = 0;
    for (const chunk of this.chunks) {
      bytes.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return bytes;
  }
}

/** Sends the first GET of a download; a network failure becomes an error naming the URL. */
async function request(url: URL, where: string, signal: AbortSignal | undefined): Promise<Response> {
  try {
    return await fetch(url, { signal });
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw new ModelSourceError(`${where}: ${url.href}: request failed: ${failureText(error)}`, { source: url.href });
  }
}

/** Returns the message of a fetch failure, preferring its cause (Node: "connect ECONNREFUSED ..."). */
function failureText(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error) return cause.message;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Returns true when a cut-off body can continue with `Range: bytes=N-`: the server sent
 * `Accept-Ranges: bytes` and no Content-Encoding, so byte offsets count the bytes received.
 */
function acceptsRanges(response: Response): boolean {
  const ranges = response.headers.get("accept-ranges") ?? "";
  const encoding = response.headers.get("content-encoding");
  return /(^|,)\s*bytes\s*(,|$)/i.test(ranges) && (encoding === null || encoding.trim().toLowerCase() === "identity");
}

/** Returns true when the response must not be stored (`Cache-Control: no-store`). */
function forbidsStore(response: Response): boolean {
  return /(^|,)\s*no-store\s*(,|$)/i.test(response.headers.get("cache-control") ?? "");
}

/** Waits `ms` milliseconds, or throws the signal's reason when it aborts first. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((done, fail) => {
    if (signal?.aborted) return fail(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      fail(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      done();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Streams a body into `received`, reporting progress. Returns undefined when the body ends and
 * the error text when the connection fails; throws when the body passes the expected size.
 */
async function streamBody(
  body: ReadableStream<Uint8Array>, received: ReceivedBody, where: string, href: string, file: string, options: SourceOptions,
): Promise<string | undefined> {
  const reader = body.getReader();
  for (;;) {
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = await reader.read();
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      return error instanceof Error ? error.message : String(error);
    }
    if (result.done) return undefined;
    if (!received.append(result.value)) {
      await reader.cancel();
      throw sizeError(where, href, `more than ${received.total} bytes`, `${received.total} bytes`, "Content-Length");
    }
    options.onProgress?.({ phase: "download", file, loaded: received.loaded, total: received.total });
  }
}

/** Returns the first byte and the full size that a 206 response's `Content-Range: bytes A-B/SIZE` gives. */
function contentRange(response: Response): { start: number; size: number | undefined } | undefined {
  const match = /^\s*bytes\s+(\d+)-\d+\/(\d+|\*)\s*$/i.exec(response.headers.get("content-range") ?? "");
  if (match === null) return undefined;
  return { start: Number(match[1]), size: match[2] === "*" ? undefined : Number(match[2]) };
}

/**
 * Fetches a URL and streams its body into one buffer, sized from Content-Length when known.
 * When the connection drops mid-body and the server accepts byte ranges, up to RESUME_ATTEMPTS
 * requests with `Range: bytes=N-` continue into the same buffer. A 200 reply starts over.
 */
async function fetchBytes(url: URL, where: string, options: SourceOptions): Promise<Download> {
  const href = url.href;
  const file = fileNameOf(url);
  let response = await request(url, where, options.signal);
  if (!response.ok) {
    void response.body?.cancel();
    const details = { source: href, field: "HTTP status", actual: `${response.status}${response.statusText ? ` ${response.statusText}` : ""}`, expected: "200" };
    throw new ModelSourceError(describeMismatch(where, details), details);
  }

  let received = new ReceivedBody(contentLength(response));
  options.onProgress?.({ phase: "download", file, loaded: 0, total: received.total });
  if (response.body === null) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    options.onProgress?.({ phase: "download", file, loaded: bytes.byteLength, total: received.total });
    return { bytes, name: href, storable: !forbidsStore(response) };
  }

  let failure = await streamBody(response.body, received, where, href, file, options);
  // Set when a 206 reply belongs to another version of the file, so the next request is for the whole file.
  let restart = false;
  for (let attempt = 1; ; attempt++) {
    if (failure === undefined && received.complete()) return { bytes: received.bytes(), name: href, storable: !forbidsStore(response) };
    if (!acceptsRanges(response)) {
      if (failure !== undefined && received.total !== undefined) {
        throw sizeError(
          where, href, `${received.loaded} bytes`, `${received.total} bytes`,
          `Content-Length; the connection failed (${failure}), and without "Accept-Ranges: bytes" from the server the download cannot resume, so load the model again`,
        );
      }
      if (failure !== undefined) {
        throw new ModelSourceError(`${where}: ${href}: download stopped after ${received.loaded} bytes: ${failure}`, { source: href });
      }
      throw sizeError(where, href, `${received.loaded} bytes`, `${received.total} bytes`, "Content-Length; connection closed early");
    }
    if (attempt > RESUME_ATTEMPTS) {
      const details = {
        source: href, field: "bytes received", actual: String(received.loaded),
        expected: received.total === undefined ? "the whole body (no Content-Length)" : String(received.total),
      };
      const cause = `the download was cut off and ${RESUME_ATTEMPTS} requests with Range did not finish it; last failure: ${failure ?? "connection closed early"}`;
      throw new ModelSourceError(describeMismatch(where, details, cause), details);
    }

    await pause(RESUME_DELAY_MS * 2 ** (attempt - 1), options.signal);
    let next: Response;
    try {
      const headers: Record<string, string> = restart ? {} : { range: `bytes=${received.loaded}-` };
      next = await fetch(url, { signal: options.signal, headers });
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      failure = failureText(error);
      continue;
    }
    if (next.status === 206) {
      // The part must start where the buffer ends, of a file of the same size and ETag.
      const range = contentRange(next);
      const etag = response.headers.get("etag");
      const sameSize = range?.size === undefined || received.total === undefined || range.size === received.total;
      const sameFile = range !== undefined && sameSize && (etag === null || next.headers.get("etag") === etag);
      if (sameFile && range.start === received.loaded && !restart) {
        failure = next.body === null ? undefined : await streamBody(next.body, received, where, href, file, options);
        continue;
      }
      void next.body?.cancel();
      failure = `Content-Range is ${JSON.stringify(next.headers.get("content-range"))}, expected bytes ${received.loaded}- of the same file`;
      restart = true;
      continue;
    }
    if (next.status === 200) {
      // The server ignored the range, or the file changed: start again from the first byte.
      response = next;
      restart = false;
      received = new ReceivedBody(contentLength(next));
      options.onProgress?.({ phase: "download", file, loaded: 0, total: received.total });
      failure = next.body === null ? undefined : await streamBody(next.body, received, where, href, file, options);
      continue;
    }
    void next.body?.cancel();
    failure = `HTTP status is ${next.status}${next.statusText ? ` ${next.statusText}` : ""}, expected 206`;
  }
}
