/**
 * Messages between the main thread and the load threads.
 *
 * @module
 */

import type { ThreadPlan, ThreadResult } from "./load_engine.ts";

/** Main thread to a load thread. */
export type ToLoadWorker =
  | { type: "start"; plan: ThreadPlan; statsBuffer: SharedArrayBuffer }
  | { type: "stop" };

/** A load thread to the main thread. */
export type FromLoadWorker =
  | { type: "held" }
  | { type: "done"; result: ThreadResult }
  | { type: "failed"; message: string };
