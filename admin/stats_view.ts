/**
 * The body of `GET /v1/stats`: every process's and thread's figures with totals and rates.
 *
 * @module
 */

import { STAT_NAMES, type ThreadFigures } from "../server/threads/thread_stats.ts";
import type { ProcessStats } from "./backend.ts";
import type { ProcessLeasing } from "../server/process/process_leasing.ts";

/** Figures with the replies per second over the last interval. */
export type RatedFigures = ThreadFigures & { repliesPerSecond: number };

/** One thread in the view. */
export type ThreadView = RatedFigures & { index: number };

/** One process in the view. */
export interface ProcessView {
  index: number;
  pid: number;
  /** Memory, CPU, restarts, uptime and numbers left, where the backend knows them. */
  rssBytes?: number;
  cpuSeconds?: number;
  restarts?: number;
  uptimeSeconds?: number;
  numbersRemaining?: number;
  /** Its leases from the number source, where the backend knows them. */
  leasing?: ProcessLeasing;
  /** Its threads' figures added up (`lastNumber`: the largest). */
  totals: RatedFigures;
  threads: ThreadView[];
}

/** The whole view. */
export interface StatsView {
  /** Every thread's figures added up (`lastNumber`: the largest). */
  totals: RatedFigures;
  processes: ProcessView[];
}

// Figures whose total is the largest, not the sum: a number, and the worst thread's loop delay.
const LARGEST: ReadonlySet<string> = new Set([
  "lastNumber",
  "loopDelayP50Ms",
  "loopDelayP99Ms",
  "loopDelayMaxMs",
]);

/**
 * Adds figures up; `lastNumber` and the loop-delay percentiles are the largest, not the sum.
 *
 * @param rows Figures to add.
 * @returns Their totals (all zero for none).
 */
export function sumFigures<T extends ThreadFigures>(rows: readonly T[]): ThreadFigures {
  const totals = Object.fromEntries(STAT_NAMES.map((name) => [name, 0])) as ThreadFigures;
  for (const row of rows) {
    for (const name of STAT_NAMES) {
      totals[name] = LARGEST.has(name)
        ? Math.max(totals[name], row[name])
        : totals[name] + row[name];
    }
  }
  return totals;
}

function rated(rows: readonly RatedFigures[]): RatedFigures {
  let repliesPerSecond = 0;
  for (const row of rows) repliesPerSecond += row.repliesPerSecond;
  return { ...sumFigures(rows), repliesPerSecond };
}

/**
 * Builds the stats view.
 *
 * @param processes A stats read from the backend.
 * @param rates Replies per second, indexed like `processes[p].threads[t]` (see `ReplyRate`).
 * @returns Totals, per-process totals and per-thread figures.
 */
export function statsView(processes: ProcessStats[], rates: number[][]): StatsView {
  const views = processes.map((process, p): ProcessView => {
    const threads = process.threads.map((figures, index): ThreadView => ({
      index,
      ...figures,
      repliesPerSecond: rates[p]?.[index] ?? 0,
    }));
    const { threads: _threads, ...health } = process;
    return { ...health, totals: rated(threads), threads };
  });
  return { totals: rated(views.map((view) => view.totals)), processes: views };
}
