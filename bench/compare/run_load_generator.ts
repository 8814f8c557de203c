/**
 * Runs `tallyho load` as a child process pinned to the client core and reads its JSON report.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import type { LoadReport } from "../../load/load_report.ts";
import { BUN, ROOT } from "./servers.ts";

/** A finished load run. */
export interface LoadOutcome {
  code: number | string;
  report: LoadReport | null;
  stderr: string;
  /** CPU seconds the load process used, sampled every 100 ms until it exited. */
  cpuSeconds: number;
  /** Wall seconds from start to exit. */
  wallSeconds: number;
}

/** A load run in progress. */
export interface LoadHandle {
  child: ChildProcess;
  /** Resolves when stderr carries a line matching `pattern`, or with `false` on exit/timeout. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<boolean>;
  /** Asks it to stop early (SIGINT: it still reports). */
  interrupt(): void;
  done: Promise<LoadOutcome>;
}

/**
 * Starts `tallyho load <args> --json` on Bun from source.
 *
 * @param args Load flags (without `load` and `--json`).
 * @param core The core to pin it to, or `null`.
 * @param timeoutMs Kill it if it has not ended by then (it bounds itself; this is a backstop).
 * @returns The running load.
 */
export function startLoad(args: string[], core: number | null, timeoutMs: number): LoadHandle {
  return startDriver([BUN, join(ROOT, "mod.ts"), "load", ...args, "--json"], core, timeoutMs);
}

/**
 * Starts a load driver that prints a report in the shape of `tallyho load --json` on stdout:
 * `tallyho load` itself, or the native client (bench/native_client).
 *
 * @param command The driver's argv.
 * @param core The core to pin it to, or `null`.
 * @param timeoutMs Kill it if it has not ended by then (it bounds itself; this is a backstop).
 * @returns The running load.
 */
export function startDriver(
  command: string[],
  core: number | null,
  timeoutMs: number,
): LoadHandle {
  const argv = core === null ? command : ["taskset", "-c", String(core), ...command];
  const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const waiters: Array<() => void> = [];
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    for (const wake of waiters.splice(0)) wake();
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const started = performance.now();
  // The process is gone by the time "close" fires, so its CPU time is sampled while it runs.
  let cpuSeconds = 0;
  const sampler = setInterval(() => {
    const sample = child.pid === undefined ? null : processCpuSeconds(child.pid);
    if (sample !== null) cpuSeconds = sample;
  }, 100);
  const done = new Promise<LoadOutcome>((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      clearInterval(sampler);
      for (const wake of waiters.splice(0)) wake();
      let report: LoadReport | null = null;
      try {
        report = JSON.parse(stdout) as LoadReport;
      } catch {
        // No report: the caller shows stderr.
      }
      resolve({
        code: code ?? signal ?? "unknown",
        report,
        stderr,
        cpuSeconds,
        wallSeconds: (performance.now() - started) / 1000,
      });
    })
  );
  let exited = false;
  done.then(() => (exited = true));
  return {
    child,
    done,
    interrupt: () => {
      if (child.pid !== undefined && !exited) process.kill(child.pid, "SIGINT");
    },
    async waitFor(pattern, waitMs) {
      const deadline = Date.now() + waitMs;
      while (!pattern.test(stderr)) {
        if (exited || Date.now() >= deadline) return false;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return true;
    },
  };
}

/**
 * CPU seconds (user + system) a process has used, from /proc.
 *
 * @param pid The process.
 * @returns Seconds, or `null` when it is gone.
 */
export function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime + stime, in clock ticks of USER_HZ (100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}
