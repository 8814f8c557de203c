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
 * `_deno_relay.ts` on Deno) reads each connection's first request head and relays it to that
 * socket. `_relay_book.ts` shares the places: nothing is decided about a connection before its
 * first bytes are read (up to `maxReading` wait for that, and as many more may send the rest of a
 * request head; a new one takes the place of one that has not sent its request rather than being
 * refused), probes (`probePaths`) are answered by the relay itself, and at most `maxConnections`
 * are relayed, with a reserve that only the token's holders may take and a share per source
 * address for the rest. A connection that has not sent a complete request head within
 * `headTimeoutMs` is closed, and so is one with no bytes either way for `idleTimeoutMs`, or for
 * `headTimeoutMs` once its first answer was 401 (no valid token). A relayed connection holds three descriptors (the client's, the
 * relay's and the inner server's), one not relayed holds one: {@linkcode adminConnectionCaps}
 * budgets them.
 *
 * The inner socket is reached through a descriptor of its directory (`/proc/self/fd/N/...`),
 * never by its path in TMPDIR again, and TMPDIR must be a directory no other user can change
 * (see private_directory.ts): another user who could rename the directory could otherwise put a
 * socket of their own in its place and read the operator's token. A supervisor killed before it
 * removed its directory leaves it behind; the next start on the same TMPDIR removes it.
 *
 * The public listener is bound without SO_REUSEPORT, so no other process can bind the admin port
 * beside it and take some of its connections (and their tokens); an upgrade passes the listening
 * socket itself to the tree that takes over ({@linkcode CappedHttpServer.handOff},
 * `CappedHttpOptions.fd`).
 *
 * @module
 */

import { closeSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import type { FetchHandler, HttpServer, ServeHttp, ServeHttpOptions } from "./http_server.ts";
import { RelayBook } from "./_relay_book.ts";
import { probeAnswerer } from "./_probe_answer.ts";
import type { RequestHead } from "./_request_head.ts";
import { privateSocketDirectory, removeLeftovers } from "./_socket_directory.ts";
import { AddressInUseError } from "../host/address_in_use_error.ts";
import { monotonicNow } from "../common/clock.ts";

/** The most admin connections relayed at once, whatever the open-file limit. */
export const ADMIN_MAX_CONNECTIONS = 64;
/**
 * The most admin connections accepted and not read yet, and the most whose first request head is
 * being read: more than a listen queue holds (Bun and Node.js listen with a backlog of 511), so
 * that one round of accepts of a flood cannot push out a connection accepted before it that has
 * not been read yet.
 */
export const ADMIN_MAX_READING = 1024;
/** Descriptors each relayed admin connection holds. */
export const DESCRIPTORS_PER_ADMIN_CONNECTION = 3;
/**
 * Descriptors the admin cap leaves to the rest of the supervisor: the runtime's own, the pipes to
 * the serving processes, logs, and the lease source's reserve (see descriptor_reserve.ts).
 */
export const ADMIN_RESERVED_FILES = 128;
/**
 * The environment variable that tells the tree taking over in an upgrade which descriptor holds
 * the admin API's listening socket (see {@linkcode CappedHttpServer.handOff}).
 */
export const ADMIN_LISTENER_FD_ENV = "TALLYHO_ADMIN_LISTENER_FD";

/**
 * The admin API's caps for a process with `openFiles` descriptors: at most
 * {@linkcode ADMIN_MAX_CONNECTIONS} relayed (three descriptors each), and
 * {@linkcode ADMIN_MAX_READING} not read yet and as many being read (one each), few enough that
 * together they can never hold more than the open-file limit less
 * {@linkcode ADMIN_RESERVED_FILES}: 64 and 1024 from an open-file limit of 2368 up (64 and 352 at
 * 1024, 34 and 35 at 300).
 *
 * @param openFiles The process's open-file limit.
 * @returns Connections relayed, and in each of the two reading pools; each at least 1.
 */
export function adminConnectionCaps(openFiles: number): { relayed: number; reading: number } {
  const budget = openFiles - ADMIN_RESERVED_FILES;
  const relayed = Math.max(
    1,
    Math.min(ADMIN_MAX_CONNECTIONS, Math.floor(budget / (DESCRIPTORS_PER_ADMIN_CONNECTION + 2))),
  );
  const reading = Math.max(
    1,
    Math.min(
      ADMIN_MAX_READING,
      Math.floor((budget - relayed * DESCRIPTORS_PER_ADMIN_CONNECTION) / 2),
    ),
  );
  return { relayed, reading };
}

/** Options for {@linkcode serveCappedHttp}. */
export interface CappedHttpOptions extends Omit<ServeHttpOptions, "path"> {
  /**
   * Most connections relayed to the inner server at once.
   * @default {ADMIN_MAX_CONNECTIONS}
   */
  maxConnections?: number;
  /**
   * Most connections accepted and not read yet, and most whose first request head is being read.
   * @default {16 times maxConnections, at most ADMIN_MAX_READING}
   */
  maxReading?: number;
  /**
   * Slots that only a connection whose first request carries the token (see `isOperator`) may
   * take.
   * @default {a quarter of maxConnections (none when it is 1)}
   */
  reserve?: number;
  /**
   * The most slots connections from one source address may hold, unless they carry the token.
   * @default {a quarter of what the reserve leaves, at least 1}
   */
  perSource?: number;
  /**
   * Paths answered by the relay itself for `GET` and `HEAD` (with `fetch`, on a connection that is
   * closed after the answer): a health probe needs no slot of the inner server.
   * @default {[]}
   */
  probePaths?: readonly string[];
  /**
   * Whether an `Authorization` header's value carries the token.
   * @default {() => false}
   */
  isOperator?: (authorization: string) => boolean;
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
   * Receives a warning when connections are refused or closed to make room, or an accept fails
   * (each at most once per 10 s).
   */
  log?: (line: string, level?: "info" | "warn") => void;
  /**
   * A listening socket to accept on instead of binding `hostname:port`: the one an upgrade's
   * old tree passed down (see {@linkcode CappedHttpServer.handOff}).
   * @default {undefined: bind}
   */
  fd?: number;
}

/** What {@linkcode CappedHttpServer.counts} reports. */
export interface CappedHttpCounts {
  /** Connections held now. */
  open: number;
  /**
   * Connections closed at once because no place could be freed for them, or answered 503 for want
   * of a relayed slot.
   */
  refusedOverCap: number;
  /** Connections closed to make room for another (no complete request yet, or idle). */
  evicted: number;
  /** Connections closed for not sending a request head in time, or for being idle. */
  timedOut: number;
  /** Probes the relay answered itself. */
  probesAnswered: number;
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
  /**
   * The listening socket's descriptor, to pass to the new tree of an upgrade (which then accepts
   * on the same socket: no moment without a listener, and no second socket on the port).
   *
   * @returns The descriptor, or null when it cannot be found here (no `/proc`).
   */
  handOff(): number | null;
  /**
   * Called right after the process that the socket was passed to is started, in the same turn of
   * the event loop. Where the runtime's spawn takes `O_NONBLOCK` off a socket it passes on (Deno
   * 2.9.6 clears it on the socket itself, which both processes share), it is set again at once
   * (descriptor_flags.ts); where that cannot be done (no FFI access), this server stops accepting
   * instead: an accept on a blocking socket that the other process emptied would hang this
   * process. Connections then wait in the socket's queue until the new tree accepts them.
   */
  handedOff(): void;
  /**
   * Accepts again when the new tree never took the socket over: where accepting stopped (Deno
   * without FFI access), on a socket bound anew once the failed tree has let go of the port
   * (within 10 s).
   */
  takeBack(): Promise<void>;
}

/** What a runtime's relay listener gets. */
export interface RelayListenOptions {
  hostname: string;
  port: number;
  /** A listening socket to accept on instead (see {@linkcode CappedHttpOptions.fd}). */
  fd?: number;
  /** The inner server's Unix socket. */
  path: string;
  /** Admits, shares, times and counts the connections. */
  book: RelayBook;
  /** Answers a probe: the response's bytes, to write before closing. */
  answer: (head: RequestHead) => Promise<Uint8Array>;
}

/** A runtime's relay listener, listening. */
export interface RelayFront {
  /** The port it is bound to. */
  readonly port: number;
  /** Stops accepting and closes the socket. */
  close(): Promise<void>;
  /** See {@linkcode CappedHttpServer.handOff}. */
  handOff(): number | null;
}

/**
 * Listens on the public address and relays each connection the book admits to the inner server.
 * Resolves once listening.
 */
export type RelayListen = (options: RelayListenOptions) => Promise<RelayFront>;

/**
 * Serves `fetch` with `serve` (the runtime's HTTP server) behind a capped relay.
 *
 * @param runtime The runtime's HTTP server and relay listeners, from `server/adapters/mod.ts`
 *   (`inherited`: the one that accepts on a passed-down socket).
 * @param fetch The handler.
 * @param options Address, cap, shares, probes, timeouts.
 * @returns The running server once it listens.
 * @throws {AddressInUseError} When the address is taken.
 * @throws {UnsafeDirectoryError} When TMPDIR could be changed by another user, or is unusable.
 */
export async function serveCappedHttp(
  runtime: {
    serve: ServeHttp;
    relay: RelayListen;
    inherited: RelayListen;
    /**
     * What to do with a socket once it was passed to a child, or null for nothing: Deno sets
     * `O_NONBLOCK` again (see {@linkcode CappedHttpServer.handedOff}); false when it could not.
     */
    afterPassing: ((fd: number) => boolean) | null;
  },
  fetch: FetchHandler,
  options: CappedHttpOptions = {},
): Promise<CappedHttpServer> {
  const maxConnections = options.maxConnections ?? ADMIN_MAX_CONNECTIONS;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new RangeError(`'maxConnections' must be a positive integer: got ${maxConnections}`);
  }
  const reserve = options.reserve ?? (maxConnections < 2 ? 0 : Math.floor(maxConnections / 4));
  if (!Number.isInteger(reserve) || reserve < 0 || reserve >= maxConnections) {
    throw new RangeError(`'reserve' must be an integer below 'maxConnections': got ${reserve}`);
  }
  const perSource = options.perSource ??
    Math.max(1, Math.floor((maxConnections - reserve) / 4));
  const maxReading = options.maxReading ?? Math.min(ADMIN_MAX_READING, maxConnections * 16);
  if (!Number.isInteger(maxReading) || maxReading < 1) {
    throw new RangeError(`'maxReading' must be a positive integer: got ${maxReading}`);
  }
  const hostname = options.hostname ?? "127.0.0.1";
  const { directory, fd: directoryFd, socketPath } = privateSocketDirectory();
  const cleanUp = () => {
    closeSync(directoryFd);
    rmSync(directory, { recursive: true, force: true });
  };
  let inner: HttpServer;
  try {
    inner = runtime.serve(fetch, { path: socketPath });
  } catch (error) {
    cleanUp();
    throw error;
  }
  const book = new RelayBook({
    maxConnections,
    maxReading,
    reserve,
    perSource,
    probePaths: new Set(options.probePaths ?? []),
    isOperator: options.isOperator ?? (() => false),
    maxHeadBytes: 16 * 1024,
    headTimeoutMs: options.headTimeoutMs ?? 5000,
    idleTimeoutMs: options.idleTimeoutMs ?? 10_000,
    log: options.log ?? (() => {}),
  });
  let port = options.port ?? 0;
  const answer = probeAnswerer(
    fetch,
    () => `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`,
  );
  const listenOptions = (fd: CappedHttpOptions["fd"]) => ({
    hostname,
    port,
    ...(fd === undefined ? {} : { fd }),
    path: socketPath,
    book,
    answer,
  });
  let front: RelayFront;
  let stoppedAccepting = false;
  let passed: number | null = null;
  try {
    const listen = options.fd === undefined ? runtime.relay : runtime.inherited;
    front = await listen(listenOptions(options.fd));
  } catch (error) {
    book.stop();
    await inner.stop();
    cleanUp();
    throw error;
  }
  port = front.port;
  const leftovers = removeLeftovers(tmpdir(), directory).catch(() => {});
  return {
    runtime: inner.runtime,
    port: front.port,
    counts: () => book.counts(),
    // Not while taking the socket back after a failed upgrade: which socket is in force is not
    // settled yet.
    handOff: () => (passed = stoppedAccepting ? null : front.handOff()),
    handedOff: () => {
      if (runtime.afterPassing === null || passed === null) return;
      if (runtime.afterPassing(passed)) return; // It accepts on beside the new tree.
      stoppedAccepting = true;
      // Synchronous up to its first await: nothing is accepted after this turn.
      void front.close();
    },
    takeBack: async () => {
      if (!stoppedAccepting) return;
      stoppedAccepting = false;
      // The tree that failed, and the processes it started, may hold the socket for a moment.
      const deadline = monotonicNow() + 10_000;
      for (;;) {
        try {
          front = await runtime.relay(listenOptions(undefined));
          return;
        } catch (error) {
          if (!(error instanceof AddressInUseError) || monotonicNow() > deadline) throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
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
      await leftovers;
      cleanUp();
    },
  };
}
