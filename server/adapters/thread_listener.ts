/**
 * The seam between the core and a runtime: what one thread's listener must do.
 *
 * @module
 */

import type { ConnectionGate } from "../limits/connection_gate.ts";
import type { CoarseClock } from "../common/clock.ts";
import type { MessageHandler } from "../numbering/message_handler.ts";
import type { Runtime } from "../runtime.ts";
import type { ListenTurns } from "../common/listen_turns.ts";

/** What a runtime adapter is given to start one thread's listener. */
export interface ListenOptions {
  host: string;
  port: number;
  /** The thread's message handler (framing, numbering, reply bytes). */
  handler: MessageHandler;
  /** The thread's stats row. */
  stats: Float64Array;
  /** Admission: allow/deny lists, the connection cap, per-address limits. */
  gate: ConnectionGate;
  /** The thread's coarse clock. */
  clock: CoarseClock;
  /** The certificate and key (PEM) to serve TLS with; plain TCP when absent. */
  tls?: { cert: string; key: string };
  /**
   * The turns the process's threads take to open a listener, so that an adapter can tell which
   * descriptor is its own (Deno: _deno_listener_fd.ts). Without them, such an adapter does not
   * tell (its listeners close unquieted).
   */
  listenTurns?: ListenTurns;
}

/** One thread's running listener. */
export interface ThreadListener {
  /** Which adapter serves it. */
  readonly runtime: Runtime;
  /** The port actually bound. */
  readonly port: number;
  /**
   * Stops accepting, lets replies already accepted for writing finish, closes every connection
   * and resolves once none is left or `timeoutMs` has passed (then the rest are cut).
   */
  shutdown(timeoutMs: number): Promise<void>;
  /** Stops accepting (the kernel refuses new connections); open connections are still served. */
  pause(): void;
  /** Accepts again after {@linkcode pause}, on the same port. */
  resume(): void;
  /**
   * Serves new connections with another certificate (or plain TCP, for null): binds a new
   * listener beside the old (SO_REUSEPORT), then closes the old one; open connections keep theirs.
   */
  setTls(tls: { cert: string; key: string } | null): void;
}

/** Starts a listener on the current runtime. */
export type Listen = (options: ListenOptions) => ThreadListener | Promise<ThreadListener>;
