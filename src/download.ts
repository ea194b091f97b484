/**
 * Streams one URL into a file with resume, size and SHA-256 checks. The body goes to
 * `<destination>.part` chunk by chunk, and the file is renamed to its destination only after
 * the checks pass, so a file at the destination path is always complete.
 */

import { ModelSourceError, describeMismatch } from "./errors.js";
import {
  type FileWriter,
  type Sha256Hash,
  createSha256,
  directoryName,
  makeDirectory,
  openFileWriter,
  readFileChunks,
  removeFile,
  rename,
  statPath,
} from "./io.js";

/** Progress of one file's download. `total` is absent when neither server nor catalog states it. */
export interface DownloadProgress {
  phase: "download";
  /** File name (not the URL), for display. */
  file: string;
  /** Bytes present so far, including those kept from an earlier, resumed download. */
  loaded: number;
  total?: number;
}

export interface DownloadOptions {
  /** Expected SHA-256 as 64 hex digits. Null or absent skips the hash check. */
  sha256?: string | null;
  /** Expected size in bytes. Null or absent trusts the server's Content-Length. */
  size?: number | null;
  onProgress?: (progress: DownloadProgress) => void;
  /** Aborting stops the transfer and keeps the .part file for a later resume. */
  signal?: AbortSignal;
  fetch?: typeof globalThis.fetch;
  /** Public function name that starts every error message. Default "pull". */
  where?: string;
  /** Name reported in progress events. Default the last component of the destination path. */
  file?: string;
}

const CHECKSUM_CAUSE = "download corrupted or catalog out of date";

function baseName(path: string): string {
  return path.slice(Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\")) + 1);
}

function sourceError(where: string, url: string, field: string, actual: string, expected: string, cause?: string): ModelSourceError {
  const details = { source: url, field, actual, expected };
  return new ModelSourceError(describeMismatch(where, details, cause), details);
}

/** Reads the start offset from a `Content-Range: bytes START-END/TOTAL` header. */
function contentRangeStart(header: string | null): number | undefined {
  const match = header === null ? null : /^bytes\s+(\d+)-\d+\/(\d+|\*)$/i.exec(header.trim());
  return match ? Number(match[1]) : undefined;
}

/**
 * Downloads `url` to `destinationPath`, resuming an existing `.part` file with an HTTP Range
 * request. The server may respond 206 (resume) or 200 (start again from byte 0). Throws
 * ModelSourceError on an HTTP error, a network failure, or a size or SHA-256 mismatch. After a
 * mismatch the .part file is deleted. After a network failure or an abort it is kept.
 *
 * NOTE: there is no lock, so two processes downloading the same file append to one .part,
 * and the size or sha256 check then rejects the result.
 */
export async function downloadFile(url: string, destinationPath: string, options: DownloadOptions = {}): Promise<void> {
  const where = options.where ?? "pull";
  const expectedSize = options.size ?? undefined;
  const expectedSha256 = options.sha256?.toLowerCase() ?? undefined;
  const file = options.file ?? baseName(destinationPath);
  const partPath = `${destinationPath}.part`;

  await makeDirectory(directoryName(destinationPath), where);
  let offset = (await statPath(partPath, where))?.size ?? 0;
  if (expectedSize !== undefined && offset > expectedSize) {
    await removeFile(partPath, where);
    offset = 0;
  }

  const hash = expectedSha256 === undefined ? undefined : await createSha256();
  let loaded = offset;
  let total = expectedSize;

  // A .part of the full size needs no request, only the checks below.
  if (expectedSize !== undefined && offset === expectedSize) {
    if (hash !== undefined) await hashFile(hash, partPath, where);
    options.onProgress?.({ phase: "download", file, loaded, total });
  } else {
    const opened = await openResponse(url, partPath, offset, expectedSize, options, where);
    offset = opened.offset;
    total = opened.total;

    // Hash the kept bytes first so the digest covers the whole file.
    if (hash !== undefined && offset > 0) await hashFile(hash, partPath, where);
    loaded = offset;
    options.onProgress?.({ phase: "download", file, loaded, total });

    const writer = await openFileWriter(partPath, offset > 0, where);
    let outcome: StreamOutcome;
    try {
      outcome = await streamBody(opened.response, writer, { file, loaded, total, hash, onProgress: options.onProgress, signal: options.signal });
    } finally {
      await writer.close();
    }
    loaded = outcome.loaded;
    await checkOutcome(outcome, total, url, partPath, where);
  }

  if (expectedSize !== undefined && loaded !== expectedSize) {
    await removeFile(partPath, where);
    throw sourceError(where, url, "size", `${loaded} bytes`, `${expectedSize} bytes`, CHECKSUM_CAUSE);
  }
  if (hash !== undefined && expectedSha256 !== undefined) {
    const actualSha256 = hash.digestHex();
    if (actualSha256 !== expectedSha256) {
      await removeFile(partPath, where);
      throw sourceError(where, url, "sha256", actualSha256, expectedSha256, CHECKSUM_CAUSE);
    }
  }
  await rename(partPath, destinationPath, where);
}

async function hashFile(hash: Sha256Hash, path: string, where: string): Promise<void> {
  for await (const chunk of readFileChunks(path, 1 << 20, where)) hash.update(chunk);
}

interface OpenedResponse {
  response: Response;
  /** Bytes of the .part file that the response continues, or 0 when it starts over. */
  offset: number;
  /** File size from Content-Length or the catalog, when either states it. */
  total: number | undefined;
}

/**
 * Requests the file from byte `offset`, or from 0 when the server rejects the range (416) or
 * sends another one. Checks the status and the announced size before any body byte is read.
 */
async function openResponse(url: string, partPath: string, offset: number, expectedSize: number | undefined, options: DownloadOptions, where: string): Promise<OpenedResponse> {
  const fetchFunction = options.fetch ?? globalThis.fetch;
  let response = await request(fetchFunction, url, offset, options.signal, where);
  const rangeMismatch = response.status === 206 && contentRangeStart(response.headers.get("content-range")) !== offset;
  if (offset > 0 && (response.status === 416 || rangeMismatch)) {
    // The .part does not match the server's file, so the download starts over.
    await response.body?.cancel();
    await removeFile(partPath, where);
    offset = 0;
    response = await request(fetchFunction, url, 0, options.signal, where);
  }
  checkStatus(response, url, offset, where);
  if (response.status === 200) offset = 0;

  let total = expectedSize;
  const contentLength = response.headers.get("content-length");
  if (contentLength !== null && /^\d+$/.test(contentLength)) {
    const announced = offset + Number(contentLength);
    if (expectedSize !== undefined && announced !== expectedSize) {
      await response.body?.cancel();
      await removeFile(partPath, where);
      throw sourceError(where, url, "size", `${announced} bytes`, `${expectedSize} bytes`, CHECKSUM_CAUSE);
    }
    total = announced;
  }
  return { response, offset, total };
}

/** Throws when the body outgrew `total` (deleting the .part) or stopped short (keeping it for a resume). */
async function checkOutcome(outcome: StreamOutcome, total: number | undefined, url: string, partPath: string, where: string): Promise<void> {
  const loaded = outcome.loaded;
  if (total !== undefined && loaded > total) {
    await removeFile(partPath, where);
    throw sourceError(where, url, "size", `more than ${total} bytes`, `${total} bytes`, CHECKSUM_CAUSE);
  }
  if (outcome.failure !== undefined || (total !== undefined && loaded < total)) {
    const received = total === undefined ? `${loaded} bytes` : `${loaded} of ${total} bytes`;
    const reason = outcome.failure === undefined ? "connection closed early" : `connection failed: ${outcome.failure}`;
    throw new ModelSourceError(`${where}: ${url}: download stopped after ${received}, ${reason} (run again to resume)`, {
      source: url,
      field: "size",
      actual: `${loaded} bytes`,
      expected: total === undefined ? "the whole file" : `${total} bytes`,
    });
  }
}

async function request(fetchFunction: typeof globalThis.fetch, url: string, offset: number, signal: AbortSignal | undefined, where: string): Promise<Response> {
  const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
  try {
    return await fetchFunction(url, { headers, signal });
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw networkError(where, url, error);
  }
}

/** Returns the most specific text of a fetch error. Node's fetch (undici) puts the system error in `cause`. */
function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error) return cause.message;
  return error instanceof Error ? error.message : String(error);
}

function networkError(where: string, url: string, error: unknown): ModelSourceError {
  return new ModelSourceError(`${where}: ${url}: request failed: ${describeNetworkError(error)}`, { source: url });
}

function checkStatus(response: Response, url: string, offset: number, where: string): void {
  if (response.status === 200 || (offset > 0 && response.status === 206)) return;
  const expected = offset > 0 ? "206 or 200" : "200";
  const statusText = response.statusText ? ` ${response.statusText}` : "";
  void response.body?.cancel();
  throw sourceError(where, url, "HTTP status", `${response.status}${statusText}`, expected);
}

interface StreamState {
  file: string;
  loaded: number;
  total: number | undefined;
  hash: Sha256Hash | undefined;
  onProgress: ((progress: DownloadProgress) => void) | undefined;
  signal: AbortSignal | undefined;
}

interface StreamOutcome {
  /** Bytes present in the .part file when the stream ended. */
  loaded: number;
  /** Network error text when the connection failed mid-body. */
  failure?: string;
}

/**
 * Copies the response body into the writer. Stops early when the body outgrows `total`, and
 * reports a network failure in the outcome so the caller can keep the .part for a resume.
 * Rethrows the abort reason when the signal fires.
 */
async function streamBody(response: Response, writer: FileWriter, state: StreamState): Promise<StreamOutcome> {
  if (response.body === null) return { loaded: state.loaded };
  const reader = response.body.getReader();
  let loaded = state.loaded;
  for (;;) {
    let result: ReadableStreamReadResult<Uint8Array>;
    try {
      result = await reader.read();
    } catch (error) {
      if (state.signal?.aborted) throw state.signal.reason;
      return { loaded, failure: describeNetworkError(error) };
    }
    if (result.done) return { loaded };
    await writer.write(result.value);
    state.hash?.update(result.value);
    loaded += result.value.byteLength;
    if (state.total !== undefined && loaded > state.total) {
      await reader.cancel();
      return { loaded };
    }
    state.onProgress?.({ phase: "download", file: state.file, loaded, total: state.total });
  }
}
