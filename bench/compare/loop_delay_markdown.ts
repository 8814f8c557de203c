/**
 * The report's event-loop delay table: for each tallyho server and workload, how long its
 * serving thread's loop stalled while it was being driven (read by `loop_delay_probe.ts`).
 *
 * @module
 */

import type { CompareResults } from "./results.ts";
import type { CompareWorkload } from "./servers.ts";
import { spread } from "./stats.ts";

const WORKLOADS: CompareWorkload[] = ["closed", "pipelined", "connect"];

const fmtMs = (ms: number) => `${ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms`;

/**
 * Renders the section; empty when no run carried the figure (no tallyho server measured, or
 * results saved before the probe existed).
 *
 * @param results A finished comparison.
 * @returns Markdown lines, ending with a blank one.
 */
export function loopDelayMarkdown(results: CompareResults): string[] {
  const rows: string[] = [];
  for (const server of results.servers) {
    const cells = WORKLOADS.map((workload) => {
      const figures = results.measurements
        .filter((m) => m.server === server.name && m.workload === workload)
        .map((m) => m.loopDelay)
        .filter((f) => f !== undefined && f !== null);
      if (figures.length === 0) return null;
      const p99 = spread(figures.map((f) => f.p99Ms)).median;
      const max = spread(figures.map((f) => f.maxMs)).max;
      return `${fmtMs(p99)} / ${fmtMs(max)}`;
    });
    if (cells.every((cell) => cell === null)) continue;
    rows.push(`| ${server.name} | ${cells.map((cell) => cell ?? "-").join(" | ")} |`);
  }
  if (rows.length === 0) return [];
  return [
    "### Event-loop delay under load",
    "",
    "How late the serving thread's 50 ms timer fired while each workload ran " +
    "(server/loop_delay.ts): the time its event loop was blocked. Read from the admin API's " +
    "`/v1/stats` every 0.5 s during each run and once more 1.1 s after it: p99 is the worst " +
    "one-second p99 of the run (median over the runs), max the longest single delay of any " +
    "run. A stall shorter than 50 ms can fall between two ticks, so both are lower bounds, exact " +
    "to within one period.",
    "",
    `| server | ${WORKLOADS.map((w) => `${w}: p99 / max`).join(" | ")} |`,
    `| --- | ${WORKLOADS.map(() => "---").join(" | ")} |`,
    ...rows,
    "",
  ];
}
