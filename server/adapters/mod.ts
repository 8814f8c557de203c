/**
 * The one place where the runtime is chosen.
 *
 * @module
 */

import { tryLockFileBun } from "./bun_file_lock.ts";
import { listenBun } from "./bun_listener.ts";
import { tlsFetchBun } from "./bun_tls_fetch.ts";
import { serveHttpBun } from "./bun_http.ts";
import { tryLockFileDeno } from "./deno_file_lock.ts";
import { type CappedHttpOptions, type CappedHttpServer, serveCappedHttp } from "./capped_http.ts";
import { relayDeno } from "./_deno_relay.ts";
import { setNonBlocking } from "./descriptor_flags.ts";
import { relayInheritedNodeNet, relayNodeNet } from "./_node_net_relay.ts";
import { listenDeno } from "./deno_listener.ts";
import { tlsFetchDeno } from "./deno_tls_fetch.ts";
import type { TryLockFile } from "./file_lock.ts";
import { serveHttpDeno } from "./deno_http.ts";
import type { FetchHandler, ServeHttp } from "./http_server.ts";
import type { Listen } from "./thread_listener.ts";
import type { TlsFetchFactory } from "./tls_fetch.ts";
import { openUnixDatagramBun } from "./bun_unix_datagram.ts";
import { openUnixDatagramDeno } from "./deno_unix_datagram.ts";
import type { OpenUnixDatagram } from "./unix_datagram.ts";
import type { Runtime } from "../runtime.ts";

export * from "./thread_listener.ts";
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

/** `"bun"` or `"deno"`: the runtime this process runs on. */
export const RUNTIME: Runtime = "Bun" in globalThis ? "bun" : "deno";

/**
 * Why this runtime cannot start TLS on a connection after reading a PROXY header, or null when it
 * can. Bun upgrades the plain socket (`upgradeTLS` with the bytes already read). Deno 2.9's own
 * API has no server-side `startTls` (denoland/deno#18451); its node:tls can wrap a node:net socket
 * server-side (denoland/deno#33303), but the Deno adapter listens with `Deno.listen`, not
 * node:net, whose accept loop stalled under descriptor pressure here (see _deno_relay.ts).
 */
export const TLS_AFTER_PROXY_HEADER: string | null = RUNTIME === "bun"
  ? null
  : "Deno 2.9 cannot start TLS on an accepted connection: it has no server-side startTls, " +
    "denoland/deno#18451";

/** The runtime's version, for logs and `--version`. */
export const RUNTIME_VERSION: string = RUNTIME === "bun"
  ? (globalThis as unknown as { Bun: { version: string } }).Bun.version
  : (globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno;

/** Starts a thread's listener on this runtime. */
export const listen: Listen = RUNTIME === "bun" ? listenBun : listenDeno;

/** Serves a fetch handler (the admin API) over HTTP on this runtime. */
export const serveHttp: ServeHttp = RUNTIME === "bun" ? serveHttpBun : serveHttpDeno;

/** Makes a `fetch` that trusts a given CA and presents a client certificate, on this runtime. */
export const tlsFetch: TlsFetchFactory = RUNTIME === "bun" ? tlsFetchBun : tlsFetchDeno;

/** Takes a kernel lock (`flock`) on a file that dies with this process, on this runtime. */
export const tryLockFile: TryLockFile = RUNTIME === "bun" ? tryLockFileBun : tryLockFileDeno;
/** Opens a Unix datagram socket (systemd's `$NOTIFY_SOCKET`) through this runtime's FFI. */
export const openUnixDatagram: OpenUnixDatagram = RUNTIME === "bun"
  ? openUnixDatagramBun
  : openUnixDatagramDeno;

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
  return serveCappedHttp(
    {
      serve: serveHttp,
      relay: RUNTIME === "bun" ? relayNodeNet : relayDeno,
      inherited: relayInheritedNodeNet,
      // Deno 2.9.6's node:child_process clears O_NONBLOCK on a socket it passes to a child (on
      // the open socket both processes share); Bun 1.4.5's leaves it set.
      afterPassing: RUNTIME === "deno" ? setNonBlocking : null,
    },
    fetch,
    options,
  );
}
