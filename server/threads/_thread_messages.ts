/**
 * The messages the main thread and its worker threads exchange.
 *
 * @module
 */

import type { ServeConfig } from "../config/resolve_config.ts";
import type { Runtime } from "../runtime.ts";

/** Main thread to worker: start serving. */
export interface StartMessage {
  type: "start";
  config: ServeConfig;
  /** The port to bind; thread 0 may bind 0 and report the port the others then share. */
  port: number;
  thread: number;
  /** The process's number ledger (see lease/number_ledger.ts). */
  ledgerBuffer: SharedArrayBuffer;
  statsBuffer: SharedArrayBuffer;
  /** The process's admission state (connection count, address table). */
  gateBuffers: { active: SharedArrayBuffer; addresses: SharedArrayBuffer };
  /** One Int32: the process's threads take turns to listen (common/listen_turns.ts). */
  listenLock: SharedArrayBuffer;
  /** This thread's id in those turns: unique in the process, across pools. */
  listenHolder: number;
}

/** Main thread to worker: serve with a new configuration from now on. */
export interface ConfigureMessage {
  type: "configure";
  config: ServeConfig;
}

/** Main thread to worker: stop accepting, finish replies in flight, close connections. */
export interface DrainMessage {
  type: "drain";
}

/** Main thread to worker: stop or start accepting; open connections are served either way. */
export interface ListenerMessage {
  type: "pause" | "resume";
}

/** Main thread to worker: the main thread's monotonic clock, answering the worker's `clock`. */
export interface ClockMessage {
  type: "clock";
  now: number;
}

/** Everything a worker receives. */
export type ToWorker =
  | StartMessage
  | ConfigureMessage
  | DrainMessage
  | ListenerMessage
  | ClockMessage;

/** Everything a worker sends. */
export type FromWorker =
  | { type: "listening"; port: number; runtime: Runtime }
  | { type: "failed"; code: string; message: string }
  | { type: "drained" }
  /** The thread has applied the last `configure`, `pause` or `resume` it was sent. */
  | { type: "ack" }
  /** The thread had to wait for a block of numbers: lease more now. */
  | { type: "starved" }
  /** The thread numbered past the ledger's low-water mark (`NumberLedger.tellAt`): lease now. */
  | { type: "low" }
  /** The thread asks for the main thread's monotonic clock, to align its own (at start). */
  | { type: "clock" };
