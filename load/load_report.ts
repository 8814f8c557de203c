/**
 * The report of a load run: the threads' figures merged into one object, which `--json` prints
 * whole and {@linkcode formatReport} prints for people.
 *
 * @module
 */

import { LatencyHistogram, RELATIVE_ERROR_BOUND } from "./latency_histogram.ts";
import type { StoppedBy, ThreadResult } from "./load_engine.ts";
import type { LoadConfig, Workload } from "./load_options.ts";
import { encodeMessage } from "./message_bytes.ts";
import { checkFailed, type CheckFigures, noFigures, REPEAT_EXAMPLES } from "./reply_checker.ts";
import { SeenNumbers } from "./seen_numbers.ts";

/** Exit code: the run went and every number checked out. */
export const EXIT_OK = 0;
/**
 * Exit code: replies did not come: none at all (nothing listening, or every request failed), or
 * some requests went unanswered past `--timeout`.
 */
export const EXIT_NO_REPLIES = 1;
/** Exit code: the reply check failed (a repeated number, a decrease, a malformed reply). */
export const EXIT_CHECK_FAILED = 3;

/** Latency figures in microseconds. */
export interface LatencyFigures {
  samples: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  /** Largest relative error of a percentile (min and max are exact). */
  relativeErrorBound: number;
}

/** The whole report. */
export interface LoadReport {
  tool: "tallyho load";
  version: string;
  runtime: string;
  /** Which socket API the threads used. */
  transport: string;
  startedAt: string;
  target: { host: string; port: number; source: string | null };
  workload: Workload;
  connections: number;
  depth: number;
  threads: number;
  message: string;
  count: number | null;
  durationMs: number;
  stoppedBy: StoppedBy;
  /** The measured window: from the start to the last reply, in ms (the longest thread's). */
  elapsedMs: number;
  requests: number;
  replies: number;
  /** Connections established. */
  connects: number;
  /** Connect workload: cycles completed (connect, send, reply, close). */
  completed: number;
  /** Requests without a reply when the run ended (not counted as errors). */
  unanswered: number;
  repliesPerSecond: number;
  connectionsPerSecond: number;
  latencyUs: LatencyFigures;
  errors: Record<string, number>;
  errorsTotal: number;
  check: CheckFigures & { distinctNumbers: number; ok: boolean };
  /**
   * Whether the run as a whole passed: every number checked out, some reply came, and no request
   * went without its reply past `--timeout`.
   */
  ok: boolean;
  /** Why the run failed, in a sentence that says what to do; null when it passed. */
  failure: string | null;
}

/** Where the report says it came from. */
export interface ReportSource {
  version: string;
  runtime: string;
  startedAt: Date;
}

/**
 * Merges the threads' figures into the report. Repeats between threads are found here, by
 * merging their sets of seen numbers.
 *
 * @param config The run's options.
 * @param results One per thread.
 * @param source Version, runtime and start time.
 * @returns The report.
 */
export function buildReport(
  config: LoadConfig,
  results: ThreadResult[],
  source: ReportSource,
): LoadReport {
  const histogram = new LatencyHistogram();
  const seen = new SeenNumbers();
  const check = noFigures();
  const noteRepeat = (n: number) => {
    check.repeats++;
    if (check.repeatExamples.length < REPEAT_EXAMPLES) check.repeatExamples.push(n);
  };
  const errors: Record<string, number> = {};
  let elapsedMs = 0;
  let stoppedBy: StoppedBy = "count";
  const sum = { requests: 0, replies: 0, connects: 0, completed: 0, unanswered: 0 };
  for (const result of results) {
    histogram.add(result.histogram);
    const figures = result.check;
    check.numbered += figures.numbered;
    check.other += figures.other;
    check.malformed += figures.malformed;
    check.decreasing += figures.decreasing;
    check.mixed += figures.mixed;
    check.untracked += figures.untracked;
    for (const n of figures.repeatExamples) noteRepeat(n);
    // Only the examples were counted so far; add the rest of this thread's own repeats.
    check.repeats += figures.repeats - figures.repeatExamples.length;
    seen.merge(result.pages, noteRepeat);
    for (const [kind, count] of Object.entries(result.errors)) {
      errors[kind] = (errors[kind] ?? 0) + count;
    }
    for (const key of Object.keys(sum) as Array<keyof typeof sum>) sum[key] += result[key];
    elapsedMs = Math.max(elapsedMs, result.activeMs);
    // The run stopped by count only if every thread finished its share.
    if (result.stoppedBy !== "count") stoppedBy = result.stoppedBy;
  }
  check.untracked += seen.untracked;
  check.repeatExamples.sort((a, b) => a - b);
  const seconds = elapsedMs / 1000;
  const us = (ns: number) => Math.round(ns / 10) / 100;
  return {
    tool: "tallyho load",
    version: source.version,
    runtime: source.runtime,
    transport: results[0]?.transport ?? "none",
    startedAt: source.startedAt.toISOString(),
    target: { host: config.host, port: config.port, source: config.source },
    workload: config.workload,
    connections: config.connections,
    depth: config.depth,
    threads: results.length,
    message: encodeMessage(config.message),
    count: config.count,
    durationMs: config.durationMs,
    stoppedBy,
    elapsedMs: Math.round(elapsedMs * 10) / 10,
    ...sum,
    repliesPerSecond: seconds > 0 ? Math.round(sum.replies / seconds) : 0,
    connectionsPerSecond: seconds > 0 ? Math.round(sum.connects / seconds) : 0,
    latencyUs: {
      samples: histogram.count,
      min: us(histogram.count === 0 ? 0 : histogram.min),
      mean: us(histogram.mean()),
      p50: us(histogram.percentile(50)),
      p90: us(histogram.percentile(90)),
      p99: us(histogram.percentile(99)),
      p999: us(histogram.percentile(99.9)),
      max: us(histogram.max),
      relativeErrorBound: RELATIVE_ERROR_BOUND,
    },
    errors,
    errorsTotal: Object.values(errors).reduce((a, b) => a + b, 0),
    check: { ...check, distinctNumbers: seen.distinct, ok: !checkFailed(check) },
    ...verdict(config, sum.replies, errors, checkFailed(check)),
  };
}

/**
 * Whether a run passed, and if not, why, in words that say what to do.
 *
 * Replies that never come fail the run: a load figure over the requests that were answered
 * would hide that the rest were not. With `pipelined` the usual cause is a server in chunk
 * framing, which takes one read of many messages as one message and answers once.
 */
function verdict(
  config: LoadConfig,
  replies: number,
  errors: Record<string, number>,
  checkFailedNow: boolean,
): { ok: boolean; failure: string | null } {
  if (checkFailedNow) {
    return { ok: false, failure: "the reply check failed (see check): the server repeats N" };
  }
  const timedOut = errors["reply_timeout"] ?? 0;
  if (timedOut > 0) {
    const hint = config.workload === "pipelined" && config.depth > 1
      ? `: with --workload pipelined each connection writes ${config.depth} messages at once, ` +
        `and a server in chunk framing answers each read once, so the server is probably in ` +
        `chunk framing; start it with --framing line (or use --workload closed)`
      : ": is the server answering every message? (a server in chunk framing answers each " +
        "read once; --framing line answers each line)";
    return {
      ok: false,
      failure: `${timedOut} requests got no reply within --timeout ${config.timeoutMs} ms` +
        ` (${replies} replies came)${hint}`,
    };
  }
  if (replies === 0) {
    return { ok: false, failure: "no reply at all: is a server listening there?" };
  }
  return { ok: true, failure: null };
}

/**
 * The exit code a report calls for.
 *
 * @param report A finished run.
 * @returns {@linkcode EXIT_CHECK_FAILED}, {@linkcode EXIT_NO_REPLIES} (none, or some never
 *   came) or {@linkcode EXIT_OK}.
 */
export function exitCodeFor(report: LoadReport): number {
  if (!report.check.ok) return EXIT_CHECK_FAILED;
  if (report.replies === 0 || !report.ok) return EXIT_NO_REPLIES;
  return EXIT_OK;
}
