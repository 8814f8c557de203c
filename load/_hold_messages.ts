/**
 * Messages between `tallyho load --workload hold` and its client processes, one JSON line each
 * (the child's stdin and stdout).
 *
 * @module
 */

import type { HoldPlan } from "./load_engine.ts";

/** What one client process is asked to do; passed as its one argument, as JSON. */
export interface HoldChildPlan {
  index: number;
  host: string;
  port: number;
  connections: number;
  /** The request, base64. */
  message: string;
  greeting: string;
  timeoutMs: number;
  hold: HoldPlan;
}

/** The parent to a client process. */
export type ToHoldChild = { type: "ask" } | { type: "exit" };

/** A thread result with its seen-number pages and histogram made JSON-safe. */
export interface WireResult {
  transport: string;
  requests: number;
  replies: number;
  connects: number;
  errors: Record<string, number>;
  histogram: { counts: number[]; count: number; min: number; max: number; sum: number };
  check: import("./reply_checker.ts").CheckFigures;
  /** Page index to its bits, base64. */
  pages: Record<string, string>;
  activeMs: number;
  asked: number;
  answered: number;
}

/** A client process to the parent. */
export type FromHoldChild =
  | { type: "stats"; open: number; held: number; connects: number; errors: Record<string, number> }
  | { type: "held" }
  | { type: "result"; result: WireResult }
  | { type: "failed"; message: string };
