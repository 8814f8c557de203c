/**
 * Runs a load test from the main thread: splits the connections and the count over the
 * threads, starts them, reports progress from their shared counters and merges their figures.
 *
 * @module
 */

import { RUNTIME, RUNTIME_VERSION } from "../server/adapters/mod.ts";
import { VERSION } from "../server/common/version.ts";
import type { LoadProgress } from "./format_report.ts";
import type { ThreadPlan, ThreadResult } from "./load_engine.ts";
import type { LoadConfig } from "./load_options.ts";
import { buildReport, type LoadReport } from "./load_report.ts";
import { createLoadStats, LoadStat, sumLoadStats } from "./load_stats.ts";
import type { FromLoadWorker, ToLoadWorker } from "./_load_messages.ts";

// From source the worker entry sits beside this module. `bun build --compile --splitting` bundles
// this module into a chunk at the bundle's root, so `import.meta.url` names that chunk and the
// worker entry, listed in compile.sh as another entry point, is at `load/load_worker.ts` under the
// root (the same quirk as server/threads/thread_pool.ts).
const WORKER_URL = import.meta.url.endsWith("/run_load.ts")
  ? new URL("./load_worker.ts", import.meta.url).href
  : new URL("./load/load_worker.ts", import.meta.url).href;

/** How a caller follows a run. */
export interface RunLoadHooks {
  /** Called about every `progressIntervalMs` with live figures. */
  onProgress?: (progress: LoadProgress) => void;
  /** Called with a one-line note, such as every idle connection being open. */
  onNote?: (line: string) => void;
  /** The run stops early (replies in flight still counted) when this resolves. */
  stop?: Promise<unknown>;
  /** @default {1000} */
  progressIntervalMs?: number;
}

/**
 * Splits `total` into `parts` shares that differ by at most one.
 *
 * @param total What to split.
 * @param parts How many shares.
 * @returns The shares, larger first.
 */
export function split(total: number, parts: number): number[] {
  const base = Math.floor(total / parts);
  return Array.from({ length: parts }, (_, i) => base + (i < total % parts ? 1 : 0));
}

/**
 * Runs the load described by `config` and resolves with its report. Always ends: at the
 * duration (plus the reply timeout for replies in flight), or when the count is done.
 *
 * @param config Validated options.
 * @param hooks Progress, notes and early stop.
 * @returns The merged report.
 */
export async function runLoad(config: LoadConfig, hooks: RunLoadHooks = {}): Promise<LoadReport> {
  let threads = Math.min(config.threads, config.connections);
  if (config.count !== null) threads = Math.min(threads, config.count);
  const connections = split(config.connections, threads);
  const counts = config.count === null ? null : split(config.count, threads);
  const statsBuffer = createLoadStats(threads);
  const startedAt = new Date();
  const started = performance.now();
  const workers: Worker[] = [];
  let held = 0;
  let last = { at: started, replies: 0, connects: 0 };
  const ticker = setInterval(() => {
    const now = performance.now();
    const totals = sumLoadStats(statsBuffer);
    const seconds = (now - last.at) / 1000;
    const replies = totals[LoadStat.replies]!;
    const connects = totals[LoadStat.connects]!;
    hooks.onProgress?.({
      elapsedMs: now - started,
      repliesPerSecond: Math.round((replies - last.replies) / seconds),
      connectionsPerSecond: Math.round((connects - last.connects) / seconds),
      errors: totals[LoadStat.errors]!,
      open: totals[LoadStat.open]!,
    });
    last = { at: now, replies, connects };
  }, hooks.progressIntervalMs ?? 1000);
  const results = await new Promise<ThreadResult[]>((resolve, reject) => {
    const done: ThreadResult[] = [];
    // A thread that never answers (a bug, or a runtime that hangs) must not hang the run.
    const guardMs = config.durationMs + 2 * config.timeoutMs + 10_000;
    const guard = setTimeout(
      () => reject(new Error(`load threads did not finish within ${guardMs} ms`)),
      guardMs,
    );
    for (let thread = 0; thread < threads; thread++) {
      const worker = new Worker(WORKER_URL, { type: "module" });
      workers.push(worker);
      worker.onmessage = (event: MessageEvent<FromLoadWorker>) => {
        const message = event.data;
        if (message.type === "held") {
          if (++held === threads) {
            hooks.onNote?.(`all ${config.connections} connections open and idle`);
          }
        } else if (message.type === "failed") {
          clearTimeout(guard);
          reject(new Error(`load thread ${thread} failed: ${message.message}`));
        } else {
          done.push(message.result);
          if (done.length === threads) {
            clearTimeout(guard);
            resolve(done);
          }
        }
      };
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault?.();
        clearTimeout(guard);
        reject(new Error(`load thread ${thread} crashed: ${event.message}`));
      };
      const plan: ThreadPlan = {
        config,
        thread,
        connections: connections[thread]!,
        count: counts === null ? null : counts[thread]!,
      };
      post(worker, { type: "start", plan, statsBuffer });
    }
    hooks.stop?.then(() => {
      for (const worker of workers) post(worker, { type: "stop" });
    });
  }).finally(() => {
    clearInterval(ticker);
    for (const worker of workers) worker.terminate();
  });
  return buildReport(config, results, {
    version: VERSION,
    runtime: `${RUNTIME} ${RUNTIME_VERSION}`,
    startedAt,
  });
}

function post(worker: Worker, message: ToLoadWorker): void {
  worker.postMessage(message);
}
