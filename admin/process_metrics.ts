/**
 * The standard `process_*` figures of the process that answers the admin API, read from `/proc`
 * on Linux. Elsewhere only what `node:process` offers is reported; the rest is left out rather
 * than guessed.
 *
 * @module
 */

import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";

/** What {@linkcode readProcessMetrics} found; a field it could not read is absent. */
export interface ProcessMetrics {
  residentMemoryBytes?: number;
  virtualMemoryBytes?: number;
  /** Unix time the process started, in seconds. */
  startTimeSeconds?: number;
  cpuSecondsTotal?: number;
  openFds?: number;
  maxFds?: number;
}

// Linux reports times in /proc in USER_HZ ticks, which is 100 on every architecture it exposes to
// user space (JavaScript cannot call sysconf); Prometheus's own procfs library assumes the same.
const USER_HZ = 100;

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function fromProc(metrics: ProcessMetrics): void {
  const stat = readText("/proc/self/stat");
  const status = readText("/proc/self/status");
  if (stat === undefined || status === undefined) return;
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const startTicks = Number(fields[19]);
  if (Number.isFinite(utime) && Number.isFinite(stime)) {
    metrics.cpuSecondsTotal = (utime + stime) / USER_HZ;
  }
  const bootTime = /^btime (\d+)$/m.exec(readText("/proc/stat") ?? "");
  if (bootTime && Number.isFinite(startTicks)) {
    metrics.startTimeSeconds = Number(bootTime[1]) + startTicks / USER_HZ;
  }
  const rss = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (rss) metrics.residentMemoryBytes = Number(rss[1]) * 1024;
  const size = /^VmSize:\s+(\d+) kB$/m.exec(status);
  if (size) metrics.virtualMemoryBytes = Number(size[1]) * 1024;
  try {
    metrics.openFds = readdirSync("/proc/self/fd").length;
  } catch {
    // Not readable (a hardened /proc): leave it out.
  }
  const limit = /^Max open files\s+(\d+)/m.exec(readText("/proc/self/limits") ?? "");
  if (limit) metrics.maxFds = Number(limit[1]);
}

/**
 * Reads this process's figures.
 *
 * @returns Resident and virtual memory, start time, CPU time and file descriptors where known.
 */
export function readProcessMetrics(): ProcessMetrics {
  const metrics: ProcessMetrics = {};
  fromProc(metrics);
  metrics.residentMemoryBytes ??= process.memoryUsage().rss;
  // Wall time on purpose: a start time shown to people and to Prometheus, not a duration.
  metrics.startTimeSeconds ??= Date.now() / 1000 - process.uptime();
  return metrics;
}
