/**
 * The messages the supervisor and its child processes exchange, one JSON line each.
 *
 * @module
 */

import type { ServeConfig } from "../config/resolve_config.ts";
import type { ThreadFigures } from "../threads/thread_stats.ts";

/** Supervisor to child, on the child's stdin. */
export type ToChild =
  /**
   * Serve: bind `port` (0 only for the first child, which then reports the port it got). With
   * `leaseFirst`, lease the first block before listening, and fail to start when that fails.
   */
  | {
    type: "start";
    index: number;
    port: number;
    config: ServeConfig;
    generation: number;
    leaseFirst?: boolean;
  }
  /** The answer to a lease: the first of `count` numbers. */
  | { type: "grant"; id: number; first: number }
  /** A lease that could not be made; the child retries with backoff. */
  | { type: "deny"; id: number; message: string }
  /**
   * Serve with `config` (configuration generation `generation`) from now on; answered with `ack`
   * and the same id once every thread serves with it, never before the child's server exists.
   */
  | { type: "configure"; id: number; config: ServeConfig; generation: number }
  | { type: "drain" }
  /** Stop or start accepting; open connections are served either way. Answered with `ack`. */
  | { type: "pause" | "resume"; id: number };

/** A child's own figures, as it reads them each second. */
export interface ChildHealth {
  /** Resident memory, in bytes. */
  rssBytes: number;
  /** User and system CPU time since the child started, in seconds. */
  cpuSeconds: number;
}

/** Child to supervisor, on the child's stdout. */
export type FromChild =
  /** `remaining`: the leased numbers it holds as it starts to listen. */
  | { type: "listening"; port: number; pid: number; remaining?: number }
  | { type: "failed"; code: string; message: string }
  | { type: "lease"; id: number; count: number }
  /**
   * Figures, every second and at once when the child runs out of numbers or has some again;
   * `remaining` is how many leased numbers the child has left, `health` the child's own memory
   * and CPU (in the once-a-second reports).
   */
  | { type: "stats"; threads: ThreadFigures[]; remaining: number; health?: ChildHealth }
  /**
   * Every thread of the child has applied the `configure`, `pause` or `resume` sent with `id`;
   * `generation` is the configuration generation the child serves with now.
   */
  | { type: "ack"; id: number; generation?: number }
  | { type: "drained"; threads: ThreadFigures[]; remaining: number };
