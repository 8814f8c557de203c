/**
 * The messages the supervisor and its child processes exchange, one JSON line each.
 *
 * @module
 */

import type { ServeConfig } from "../config.ts";
import type { ThreadFigures } from "../thread_stats.ts";

/** Supervisor to child, on the child's stdin. */
export type ToChild =
  /** Serve: bind `port` (0 only for the first child, which then reports the port it got). */
  | { type: "start"; index: number; port: number; config: ServeConfig }
  /** The answer to a lease: the first of `count` numbers. */
  | { type: "grant"; id: number; first: number }
  /** A lease that could not be made; the child retries with backoff. */
  | { type: "deny"; id: number; message: string }
  /** Serve with `config` from now on; answered with `configured` and the same id. */
  | { type: "configure"; id: number; config: ServeConfig }
  | { type: "drain" };

/** Child to supervisor, on the child's stdout. */
export type FromChild =
  | { type: "listening"; port: number; pid: number }
  | { type: "failed"; code: string; message: string }
  | { type: "lease"; id: number; count: number }
  /** Every second; `remaining`: leased numbers not yet handed out. */
  | { type: "stats"; threads: ThreadFigures[]; remaining: number }
  /** Every thread of the child now serves with the configuration sent with `id`. */
  | { type: "configured"; id: number }
  | { type: "drained"; threads: ThreadFigures[]; remaining: number };
