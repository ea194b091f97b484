/**
 * The one place that probes the host's globals. Other modules read `env` instead of testing
 * `process`, `Deno` or `window` themselves, so a new host needs changes here only.
 * The values are computed once, when the module loads, and frozen.
 */

/** Kind of host that runs the code. */
export type HostKind = "node" | "deno" | "browser" | "worker" | "unknown";

/** Facts about the host and the features it offers; see `env`. */
export interface HostEnvironment {
  /** Node.js (and not Deno, which also defines `process`). */
  readonly isNode: boolean;
  readonly isDeno: boolean;
  /** A browser page's main thread. */
  readonly isBrowser: boolean;
  /** A Web Worker of any kind (dedicated, shared or service). */
  readonly isWorker: boolean;
  readonly kind: HostKind;
  /** Version of the runtime: Node's or Deno's; undefined in browsers. */
  readonly version: string | undefined;
  /** Whether `node:fs` can be imported, so model paths and file: URLs can be read. */
  readonly hasFileSystem: boolean;
  readonly hasFetch: boolean;
  /** Whether the Cache API (`caches`) exists: browsers in secure contexts, their workers, and Deno. */
  readonly hasCacheStorage: boolean;
  /** Whether `crypto.subtle` exists (browsers: only in secure contexts such as http://127.0.0.1). */
  readonly hasWebCrypto: boolean;
  readonly hasSharedArrayBuffer: boolean;
  /** Whether the page is cross-origin isolated, which browsers require to share wasm memory. */
  readonly crossOriginIsolated: boolean;
}

interface HostGlobals {
  process?: { versions?: { node?: string } };
  Deno?: { version?: { deno?: string } };
  window?: unknown;
  document?: unknown;
  WorkerGlobalScope?: unknown;
  fetch?: unknown;
  caches?: { open?: unknown };
  crypto?: { subtle?: unknown };
  SharedArrayBuffer?: unknown;
  crossOriginIsolated?: boolean;
}

function probeCacheStorage(host: HostGlobals): boolean {
  // Reading `caches` throws a SecurityError in opaque origins, such as sandboxed iframes.
  try {
    return typeof host.caches === "object" && host.caches !== null && typeof host.caches.open === "function";
  } catch {
    return false;
  }
}

function probe(): HostEnvironment {
  const host = globalThis as HostGlobals;
  const denoVersion = host.Deno?.version?.deno;
  const isDeno = typeof denoVersion === "string";
  // Deno 2 defines `process` with a Node version for compatibility, so Deno is tested first.
  const nodeVersion = host.process?.versions?.node;
  const isNode = !isDeno && typeof nodeVersion === "string";
  const scope = host.WorkerGlobalScope;
  const isWorker = !isNode && !isDeno && typeof scope === "function" && globalThis instanceof scope;
  const isBrowser = !isNode && !isDeno && !isWorker && typeof host.window === "object" && typeof host.document === "object";
  let kind: HostKind = "unknown";
  if (isNode) kind = "node";
  else if (isDeno) kind = "deno";
  else if (isBrowser) kind = "browser";
  else if (isWorker) kind = "worker";
  return Object.freeze({
    isNode,
    isDeno,
    isBrowser,
    isWorker,
    kind,
    version: isDeno ? denoVersion : nodeVersion,
    hasFileSystem: isNode || isDeno,
    hasFetch: typeof host.fetch === "function",
    hasCacheStorage: probeCacheStorage(host),
    hasWebCrypto: typeof host.crypto?.subtle === "object" && host.crypto.subtle !== null,
    hasSharedArrayBuffer: typeof host.SharedArrayBuffer === "function",
    crossOriginIsolated: host.crossOriginIsolated === true,
  });
}

/** Facts about the running host, probed once at load time. */
export const env: HostEnvironment = probe();
