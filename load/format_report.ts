/**
 * The report and the live progress line as text for a terminal.
 *
 * @module
 */

import type { LoadReport } from "./load_report.ts";

const grouped = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/**
 * Formats a count with thousands separators.
 *
 * @param n A number.
 * @returns E.g. `1,234,567`.
 */
export function formatCount(n: number): string {
  return grouped.format(n);
}

/**
 * Formats microseconds with a unit that keeps three significant figures or so.
 *
 * @param us Microseconds.
 * @returns E.g. `812 us`, `1.25 ms`, `2.40 s`.
 */
function formatMicros(us: number): string {
  if (us < 1000) return `${us < 10 ? us.toFixed(2) : us < 100 ? us.toFixed(1) : us.toFixed(0)} us`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

/**
 * The report as lines of text.
 *
 * @param report A finished run.
 * @returns Lines, without trailing newlines.
 */
export function formatReport(report: LoadReport): string[] {
  const r = report;
  const shape = r.workload === "pipelined" ? `, depth ${r.depth}` : "";
  const source = r.target.source === null ? "" : ` from ${r.target.source}`;
  const lines = [
    `tallyho load ${r.version} on ${r.runtime} (${r.transport} sockets): ${r.workload}, ` +
    `${formatCount(r.connections)} connections${shape}, ${r.threads} thread${
      r.threads === 1 ? "" : "s"
    } -> ${r.target.host}:${r.target.port}${source}`,
    `  ran         ${(r.elapsedMs / 1000).toFixed(2)} s, stopped by ${r.stoppedBy}`,
    `  replies     ${formatCount(r.replies)} (${formatCount(r.repliesPerSecond)}/s) of ` +
    `${formatCount(r.requests)} requests` +
    (r.unanswered > 0 ? `, ${formatCount(r.unanswered)} unanswered at the end` : ""),
    `  connections ${formatCount(r.connects)} (${formatCount(r.connectionsPerSecond)}/s)`,
  ];
  const l = r.latencyUs;
  lines.push(
    l.samples === 0
      ? "  latency     no samples"
      : `  latency     p50 ${formatMicros(l.p50)}  p90 ${formatMicros(l.p90)}  p99 ${
        formatMicros(l.p99)
      }  p99.9 ${formatMicros(l.p999)}  max ${formatMicros(l.max)}` +
        `  (percentiles within ${(l.relativeErrorBound * 100).toFixed(2)} %)`,
  );
  const errorKinds = Object.entries(r.errors).sort((a, b) => b[1] - a[1]);
  lines.push(
    errorKinds.length === 0
      ? "  errors      none"
      : `  errors      ${formatCount(r.errorsTotal)}: ${
        errorKinds.map(([kind, n]) => `${kind} ${formatCount(n)}`).join(", ")
      }`,
  );
  const c = r.check;
  let check = `  check       ${formatCount(c.numbered)} numbered replies, ` +
    `${formatCount(c.distinctNumbers)} distinct numbers`;
  if (c.other > 0) check += `, ${formatCount(c.other)} other replies (not checked)`;
  if (c.untracked > 0) check += `, ${formatCount(c.untracked)} not tracked (memory limit)`;
  lines.push(check + (c.ok ? ": no repeats" : ""));
  if (c.repeats > 0) {
    lines.push(
      `  !!! REPEATED NUMBERS: ${formatCount(c.repeats)} replies carried a number already ` +
        `handed out (e.g. ${c.repeatExamples.join(", ")}): the server under test repeats N`,
    );
  }
  if (c.decreasing > 0) {
    lines.push(`  !!! ${formatCount(c.decreasing)} replies had a smaller N than the one before`);
  }
  if (c.mixed > 0) {
    lines.push(`  !!! ${formatCount(c.mixed)} connections both repeated and advanced their N`);
  }
  if (c.malformed > 0) {
    lines.push(
      `  !!! ${formatCount(c.malformed)} replies started with the greeting but had no valid N`,
    );
  }
  return lines;
}

/** Live totals for the progress line. */
export interface LoadProgress {
  elapsedMs: number;
  repliesPerSecond: number;
  connectionsPerSecond: number;
  errors: number;
  open: number;
}

/**
 * The live progress line.
 *
 * @param progress Totals since the start and rates over the last interval.
 * @returns One line.
 */
export function formatProgress(progress: LoadProgress): string {
  return `${(progress.elapsedMs / 1000).toFixed(1)} s  ` +
    `${formatCount(progress.repliesPerSecond)} replies/s  ` +
    `${formatCount(progress.connectionsPerSecond)} connections/s  ` +
    `${formatCount(progress.open)} open  ${formatCount(progress.errors)} errors`;
}
