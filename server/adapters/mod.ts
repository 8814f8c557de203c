/**
 * The one place where the runtime is chosen: {@linkcode runtime} is Bun's or Deno's adapter
 * object ({@linkcode RuntimeAdapter}). Only entry points import it (`cli/`, the worker entry
 * `server/threads/worker_main.ts`, `startServer` for an embedder, the load generator's workers) and hand
 * it, or the functions it holds, down; `tests/layers_test.ts` keeps the rest of server/ from
 * importing this module.
 *
 * @module
 */

import { bunAdapter } from "./bun_adapter.ts";
import { type CappedHttpOptions, type CappedHttpServer, serveCappedHttp } from "./capped_http.ts";
import { denoAdapter } from "./deno_adapter.ts";
import type { FetchHandler } from "./http_server.ts";
import type { RuntimeAdapter } from "./runtime_adapter.ts";
import type { Runtime } from "../runtime.ts";

export * from "./thread_listener.ts";
export type { RuntimeAdapter, RuntimeCapabilities } from "./runtime_adapter.ts";
export type { HeldFileLock, TryLockFile } from "./file_lock.ts";
export type { TlsFetchFactory, TlsFetchOptions } from "./tls_fetch.ts";
export type { OpenUnixDatagram, UnixDatagramSender } from "./unix_datagram.ts";
export {
  ADMIN_LISTENER_FD_ENV,
  ADMIN_MAX_CONNECTIONS,
  ADMIN_MAX_READING,
  adminConnectionCaps,
  type CappedHttpCounts,
  type CappedHttpOptions,
  type CappedHttpServer,
} from "./capped_http.ts";

export { closeDescriptor, closeOnExec, duplicate } from "./descriptor_flags.ts";

/** The adapter of the runtime this process runs on. */
export const runtime: RuntimeAdapter = "Bun" in globalThis ? bunAdapter : denoAdapter;

/** `"bun"` or `"deno"`: the runtime this process runs on. */
export const RUNTIME: Runtime = runtime.runtime;

/** The runtime's version, for logs and `--version`. */
export const RUNTIME_VERSION: string = runtime.version;

/**
 * Serves the admin API on this runtime behind a connection cap and short timeouts (see
 * capped_http.ts), so client-facing work in the supervisor cannot take its descriptors.
 *
 * @param fetch The handler.
 * @param options Address, cap, timeouts.
 * @returns The running server.
 */
export function serveAdminHttp(
  fetch: FetchHandler,
  options: CappedHttpOptions = {},
): Promise<CappedHttpServer> {
  return serveCappedHttp(runtime.adminHttp, fetch, options);
}
