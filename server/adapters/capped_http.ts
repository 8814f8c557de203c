/**
 * An HTTP server with a connection cap and short timeouts, for the admin API, which shares a
 * process (the supervisor) with the lease owner. Neither `Bun.serve` nor `Deno.serve` can cap
 * connections or time out one that never sends a request (Deno 2.9.6 has no idle timeout at all),
 * so idle connections without a token could take every descriptor the process has: the state
 * file could then not be written (`EMFILE`), leases stopped and clients were closed unnumbered,
 * and on Deno the `EMFILE` from `Deno.serve`'s accept loop was uncaught and ended the supervisor.
 *
 * So the runtime's HTTP server listens on a Unix socket in a private directory (mode 0700), and a
 * listener of our own on the public address (the runtime part: `_node_net_relay.ts` on Bun,
 * `_deno_relay.ts` on Deno) admits at most `maxConnections` connections and
 * relays each to it. A connection over the cap is accepted and closed at once (counted), so the
 * kernel's queue keeps moving; a connection that has not sent a complete request head within
 * `headTimeoutMs` is closed, and so is one with no bytes either way for `idleTimeoutMs`, or for
 * `headTimeoutMs` once its first answer was 401 (no valid token). Each
 * admitted connection holds three descriptors (the client's, the relay's and the inner server's),
 * which {@linkcode adminConnectionCap} budgets.
 *
 * @module
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FetchHandler, HttpServer, ServeHttp, ServeHttpOptions } from "./http_server.ts";
import { RelayBook } from "./_relay_book.ts";
import { monotonicNow } from "../monotonic_clock.ts";

/** The most admin connections at once, whatever the open-file limit. */
export const ADMIN_MAX_CONNECTIONS = 64;
/** Descriptors each admitted admin connection holds. */
export const DESCRIPTORS_PER_ADMIN_CONNECTION = 3;
/**
 * Descriptors the admin cap leaves to the rest of the supervisor: the runtime's own, the pipes to
 * the serving processes, logs, and the lease source's reserve (see descriptor_reserve.ts).
 */
export const ADMIN_RESERVED_FILES = 128;

/**
 * The admin connection cap for a process with `openFiles` descriptors: at most
 * {@linkcode ADMIN_MAX_CONNECTIONS}, and few enough that the admin API can never hold more than
 * the open-file limit less {@linkcode ADMIN_RESERVED_FILES}.
 *
 * @param openFiles The process's open-file limit.
 * @returns Connections, at least 1.
 */
export function adminConnectionCap(openFiles: number): number {
  const byFiles = Math.floor(
    (openFiles - ADMIN_RESERVED_FILES) / DESCRIPTORS_PER_ADMIN_CONNECTION,
  );
  return Math.max(1, Math.min(ADMIN_MAX_CONNECTIONS, byFiles));
}

/** Options for {@linkcode serveCappedHttp}. */
export interface CappedHttpOptions extends Omit<ServeHttpOptions, "path"> {
  /**
   * Most connections at once; more are accepted and closed at once.
   * @default {ADMIN_MAX_CONNECTIONS}
   */
  maxConnections?: number;
  /**
   * Milliseconds a new connection has to send a complete request head.
   * @default {5000}
   */
  headTimeoutMs?: number;
  /**
   * Milliseconds a connection may pass with no bytes either way.
   * @default {10000}
   */
  idleTimeoutMs?: number;
  /**
   * Receives a warning when connections are refused over the cap or an accept fails (each at
   * most once per 10 s).
   */
  log?: (line: string, level?: "info" | "warn") => void;
  /**
   * Binds with SO_REUSEPORT, so that the tree taking over in an upgrade can bind the same port
   * before this one lets go of it (cli/serve.ts probes the port exclusively before the first
   * start, so a stranger is still refused). Without it a busy port is an error.
   * @default {false}
   */
  reusePort?: boolean;
}

/** What {@linkcode CappedHttpServer.counts} reports. */
export interface CappedHttpCounts {
  /** Connections held now. */
  open: number;
  /** Connections closed at once because `maxConnections` were held. */
  refusedOverCap: number;
  /** Connections closed for not sending a request head in time, or for being idle. */
  timedOut: number;
}

/** A running capped server. */
export interface CappedHttpServer extends HttpServer {
  /** The figures so far. */
  counts(): CappedHttpCounts;
  /**
   * Stops accepting, then closes the connections still held once every one has had its first
   * answer or `graceMs` has passed: an upgrade lets the requests a tree already accepted be
   * answered (a `/readyz` probe must not see its connection cut) while the tree taking over
   * answers the new ones. Idle keep-alive connections are not waited for.
   *
   * @param graceMs How long held connections may take.
   * @default {0}
   */
  stop(graceMs?: number): Promise<void>;
}

/** What a runtime's relay listener gets. */
export interface RelayListenOptions {
  hostname: string;
  port: number;
  /** The inner server's Unix socket. */
  path: string;
  /** Admits, times and counts the connections. */
  book: RelayBook;
  /** See {@linkcode CappedHttpOptions.reusePort}. */
  reusePort: boolean;
}

/**
 * Listens on the public address and relays each connection the book admits to the inner server.
 * Resolves once listening, with the bound port.
 */
export type RelayListen = (
  options: RelayListenOptions,
) => Promise<{ port: number; close(): Promise<void> }>;

/**
 * Serves `fetch` with `serve` (the runtime's HTTP server) behind a capped relay.
 *
 * @param runtime The runtime's HTTP server and relay listener, from `server/adapters/mod.ts`.
 * @param fetch The handler.
 * @param options Address, cap, timeouts.
 * @returns The running server once it listens.
 * @throws {AddressInUseError} When the address is taken.
 */
export async function serveCappedHttp(
  runtime: { serve: ServeHttp; relay: RelayListen },
  fetch: FetchHandler,
  options: CappedHttpOptions = {},
): Promise<CappedHttpServer> {
  const maxConnections = options.maxConnections ?? ADMIN_MAX_CONNECTIONS;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new RangeError(`'maxConnections' must be a positive integer: got ${maxConnections}`);
  }
  // mkdtemp makes the directory 0700: only this user can reach the inner server, so nobody can
  // go around the cap by connecting to it directly.
  let directory: string;
  try {
    directory = mkdtempSync(join(tmpdir(), "tallyho-admin-"));
  } catch (error) {
    throw new Error(
      `Cannot start the admin API: cannot make its private socket directory in ${tmpdir()}: ${
        (error as { code?: string }).code ?? (error as Error).message
      }. Set TMPDIR to a writable directory, or start with --admin off`,
    );
  }
  const path = join(directory, "http.sock");
  let inner: HttpServer;
  try {
    inner = runtime.serve(fetch, { path });
  } catch (error) {
    rmSync(directory, { recursive: true, force: true });
    throw error;
  }
  const book = new RelayBook({
    maxConnections,
    headTimeoutMs: options.headTimeoutMs ?? 5000,
    idleTimeoutMs: options.idleTimeoutMs ?? 10_000,
    log: options.log ?? (() => {}),
  });
  let front: { port: number; close(): Promise<void> };
  try {
    front = await runtime.relay({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? 0,
      path,
      book,
      reusePort: options.reusePort ?? false,
    });
  } catch (error) {
    book.stop();
    await inner.stop();
    rmSync(directory, { recursive: true, force: true });
    throw error;
  }
  return {
    runtime: inner.runtime,
    port: front.port,
    counts: () => book.counts(),
    stop: async (graceMs = 0) => {
      const closing = front.close();
      const deadline = monotonicNow() + graceMs;
      while (book.unanswered() > 0 && monotonicNow() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      // The admin API has no long requests: held connections are closed rather than awaited.
      book.stop();
      await closing;
      await inner.stop();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
