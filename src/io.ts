/**
 * The host's only access to the file system, environment variables and hashing. Node and Deno
 * both provide the `node:` builtins used here. Each builtin is imported on first use, so a
 * browser bundle that never calls these functions still loads.
 *
 * Failures throw ModelSourceError with the message `<where>: <path>: <what failed>`, where
 * `where` is the caller's public function name (for example `loadModel`).
 */

import { ModelSourceError } from "./errors.js";

type FsModule = typeof import("node:fs/promises");
type FileHandle = import("node:fs/promises").FileHandle;

let fsModule: Promise<FsModule> | undefined;

function loadFs(): Promise<FsModule> {
  fsModule ??= import("node:fs/promises");
  return fsModule;
}

/** Describes a failed file-system call in plain words, keeping the system code for search. */
function describeSystemError(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  switch (code) {
    case "ENOENT":
      return "file not found";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory, expected a file";
    case "ENOTDIR":
      return "a parent of this path is not a directory";
    case "ENOSPC":
      return "no space left on device";
    default:
      return error instanceof Error ? error.message : String(error);
  }
}

function ioError(where: string, path: string, error: unknown, action?: string): ModelSourceError {
  const description = describeSystemError(error);
  const message = action ? `${where}: ${path}: ${action} failed: ${description}` : `${where}: ${path}: ${description}`;
  return new ModelSourceError(message, { source: path });
}

function isMissing(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/** Reads a whole file into memory. Stream large files with readFileChunks instead. */
export async function readFileBytes(path: string, where = "readFile"): Promise<Uint8Array> {
  const fs = await loadFs();
  try {
    const buffer = await fs.readFile(path);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    throw ioError(where, path, error);
  }
}

/** Yields a file's bytes in chunks of at most `chunkSize`. Each chunk is a fresh buffer. */
export async function* readFileChunks(path: string, chunkSize = 1 << 20, where = "readFile"): AsyncGenerator<Uint8Array> {
  const fs = await loadFs();
  let handle: FileHandle;
  try {
    handle = await fs.open(path, "r");
  } catch (error) {
    throw ioError(where, path, error);
  }
  try {
    for (;;) {
      const chunk = new Uint8Array(chunkSize);
      const { bytesRead } = await handle.read(chunk, 0, chunkSize, null);
      if (bytesRead === 0) return;
      yield chunk.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

/** Kind and size of a path, after following symbolic links. */
export interface PathInfo {
  kind: "file" | "directory" | "other";
  size: number;
}

/** Returns what a path names, or undefined when it does not exist. */
export async function statPath(path: string, where = "stat"): Promise<PathInfo | undefined> {
  const fs = await loadFs();
  try {
    const stats = await fs.stat(path);
    const kind = stats.isFile() ? "file" : stats.isDirectory() ? "directory" : "other";
    return { kind, size: stats.size };
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw ioError(where, path, error);
  }
}

/** Returns true when the path names a regular file (or a link to one). */
export async function fileExists(path: string): Promise<boolean> {
  return (await statPath(path))?.kind === "file";
}

/** Returns a file's size in bytes. */
export async function fileSize(path: string, where = "stat"): Promise<number> {
  const info = await statPath(path, where);
  if (info === undefined) throw new ModelSourceError(`${where}: ${path}: file not found`, { source: path });
  return info.size;
}

/** Creates a directory and its missing parents. */
export async function makeDirectory(path: string, where = "makeDirectory"): Promise<void> {
  const fs = await loadFs();
  try {
    await fs.mkdir(path, { recursive: true });
  } catch (error) {
    throw ioError(where, path, error, "create directory");
  }
}

/** Writes a file through a temporary sibling and a rename, so readers never see half a file. */
export async function writeFileAtomic(path: string, bytes: Uint8Array, where = "writeFile"): Promise<void> {
  const fs = await loadFs();
  const temporaryPath = `${path}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`;
  try {
    await fs.writeFile(temporaryPath, bytes);
    await fs.rename(temporaryPath, path);
  } catch (error) {
    await fs.rm(temporaryPath, { force: true });
    throw ioError(where, path, error, "write");
  }
}

/** Appends bytes to a file, creating it when missing. */
export async function appendBytes(path: string, bytes: Uint8Array, where = "appendFile"): Promise<void> {
  const fs = await loadFs();
  try {
    await fs.appendFile(path, bytes);
  } catch (error) {
    throw ioError(where, path, error, "append");
  }
}

/** Sequential writer for streaming downloads. */
export interface FileWriter {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Opens a file for sequential writing: appended to when `append` is true, else truncated. */
export async function openFileWriter(path: string, append: boolean, where = "writeFile"): Promise<FileWriter> {
  const fs = await loadFs();
  let handle: FileHandle;
  try {
    handle = await fs.open(path, append ? "a" : "w");
  } catch (error) {
    throw ioError(where, path, error, "open");
  }
  let closed = false;
  return {
    async write(bytes: Uint8Array): Promise<void> {
      try {
        // A single write call may store fewer bytes than given, so loop until all are written.
        let offset = 0;
        while (offset < bytes.byteLength) {
          const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset);
          offset += bytesWritten;
        }
      } catch (error) {
        throw ioError(where, path, error, "write");
      }
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      try {
        await handle.close();
      } catch (error) {
        throw ioError(where, path, error, "close");
      }
    },
  };
}

/** Renames a file, replacing the destination if it exists. */
export async function rename(fromPath: string, toPath: string, where = "rename"): Promise<void> {
  const fs = await loadFs();
  try {
    await fs.rename(fromPath, toPath);
  } catch (error) {
    throw ioError(where, fromPath, error, `rename to ${toPath}`);
  }
}

/** Deletes a file. A missing file is not an error. */
export async function removeFile(path: string, where = "removeFile"): Promise<void> {
  const fs = await loadFs();
  try {
    await fs.rm(path, { force: true });
  } catch (error) {
    throw ioError(where, path, error, "remove");
  }
}

interface DenoGlobal {
  build?: { os?: string };
  env?: { get(name: string): string | undefined };
}

interface ProcessGlobal {
  platform?: string;
  env?: Record<string, string | undefined>;
}

const runtime = globalThis as { process?: ProcessGlobal; Deno?: DenoGlobal };

function isWindows(): boolean {
  return runtime.Deno?.build?.os === "windows" || runtime.process?.platform === "win32";
}

/** Separator between entries of a path list such as DORMANT_MODELS: ";" on Windows, else ":". */
export const pathDelimiter: string = isWindows() ? ";" : ":";

/** Separator between path components of this platform. */
export const pathSeparator: string = isWindows() ? "\\" : "/";

/**
 * Returns an environment variable, or undefined when it is unset, empty, or cannot be read
 * (a browser, or Deno without --allow-env).
 */
export function getEnv(name: string): string | undefined {
  try {
    const value = runtime.process?.env?.[name] ?? runtime.Deno?.env?.get(name);
    return value === "" ? undefined : value;
  } catch {
    return undefined;
  }
}

/** Joins path components with the platform separator, dropping empty parts and doubled separators. */
export function joinPath(...parts: string[]): string {
  const nonEmpty = parts.filter((part) => part !== "");
  const last = nonEmpty.length - 1;
  // Trimming "/" to "" still yields a leading "/" after join, so root paths survive.
  return nonEmpty
    .map((part, index) => {
      let trimmed = part;
      if (index > 0) trimmed = trimmed.replace(/^[\\/]+/, "");
      if (index < last) trimmed = trimmed.replace(/[\\/]+$/, "");
      return trimmed;
    })
    .join(pathSeparator);
}

/** Returns the directory part of a path ("." when the path has no separator). */
export function directoryName(path: string): string {
  const index = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (index < 0) return ".";
  if (index === 0) return path.slice(0, 1);
  return path.slice(0, index);
}

/**
 * Returns dormant's cache directory: $DORMANT_CACHE, else $XDG_CACHE_HOME/dormant, else
 * ~/.cache/dormant. The directory is not created here.
 */
export async function userCacheDirectory(): Promise<string> {
  const explicit = getEnv("DORMANT_CACHE");
  if (explicit !== undefined) return explicit;
  const xdgCache = getEnv("XDG_CACHE_HOME");
  if (xdgCache !== undefined) return joinPath(xdgCache, "dormant");
  const os = await import("node:os");
  const home = os.homedir();
  if (home === "") {
    throw new ModelSourceError("userCacheDirectory: home directory is unknown, expected DORMANT_CACHE or XDG_CACHE_HOME to be set", {
      source: "DORMANT_CACHE",
    });
  }
  return joinPath(home, ".cache", "dormant");
}

/** Converts a file: URL to a path of this platform. */
export async function urlToPath(url: URL): Promise<string> {
  const { fileURLToPath } = await import("node:url");
  return fileURLToPath(url);
}

/** Incremental SHA-256. */
export interface Sha256Hash {
  update(bytes: Uint8Array): void;
  /** Returns the digest as 64 lowercase hex digits. Call it once, after the last update. */
  digestHex(): string;
}

/** Creates an incremental SHA-256 hash with node:crypto, because Web Crypto has no incremental digest. */
export async function createSha256(): Promise<Sha256Hash> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  return {
    update(bytes: Uint8Array): void {
      hash.update(bytes);
    },
    digestHex(): string {
      return hash.digest("hex");
    },
  };
}
