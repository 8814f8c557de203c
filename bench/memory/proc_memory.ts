/**
 * What a process's memory is, read from /proc: its resident set (RSS), the peak of it since the
 * last reset (VmHWM), its proportional share (PSS: a page shared by k processes counts 1/k in
 * each) and what is its alone (private pages), split into anonymous memory (heaps, stacks) and
 * file pages (the executable and what it maps). File pages of one executable are shared by every
 * process that runs it, so a tree of many processes has an RSS sum far above the memory it uses:
 * PSS sums to what it uses.
 *
 * @module
 */

import { readdirSync, readFileSync, writeFileSync } from "node:fs";

/** One process's memory, in bytes. */
export interface ProcessMemory {
  pid: number;
  /** VmRSS. */
  rss: number;
  /** VmHWM: the most RSS since the process started or its peak was last reset. */
  peak: number;
  /** RssAnon: anonymous pages (heaps, stacks, JIT code). */
  anon: number;
  /** RssFile: file pages (the executable, libraries), shared with other processes running it. */
  file: number;
  /** Pss from smaps_rollup. */
  pss: number;
  /** Private_Clean + Private_Dirty from smaps_rollup: what would be freed if it exited. */
  private: number;
  /** OS threads. */
  threads: number;
}

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

function kibField(text: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
  return match === null ? 0 : Number(match[1]) * 1024;
}

/**
 * Reads one process's memory.
 *
 * @param pid The process.
 * @returns Its figures, or `null` when it is gone.
 */
export function readProcessMemory(pid: number): ProcessMemory | null {
  const status = read(`/proc/${pid}/status`);
  if (status === null) return null;
  const rollup = read(`/proc/${pid}/smaps_rollup`) ?? "";
  return {
    pid,
    rss: kibField(status, "VmRSS"),
    peak: kibField(status, "VmHWM"),
    anon: kibField(status, "RssAnon"),
    file: kibField(status, "RssFile"),
    pss: kibField(rollup, "Pss"),
    private: kibField(rollup, "Private_Clean") + kibField(rollup, "Private_Dirty"),
    threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 0),
  };
}

/**
 * Sets a process's peak (VmHWM) back to its RSS now (`echo 5 > /proc/PID/clear_refs`, Linux 4.0
 * and later), so the next peak read is the peak since this moment.
 *
 * @param pid The process.
 * @returns Whether it could be reset (the process is ours and still running).
 */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/**
 * A process and its descendants, root first. Children are read from every thread's list
 * (`/proc/PID/task/TID/children`): a runtime may spawn from a thread other than the main one.
 *
 * @param root The tree's root.
 * @returns The pids; empty when the root is gone.
 */
export function processTree(root: number): number[] {
  const pids: number[] = [];
  const visit = (pid: number) => {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      return;
    }
    pids.push(pid);
    for (const task of tasks) {
      const children = read(`/proc/${pid}/task/${task}/children`)?.trim() ?? "";
      if (children !== "") { for (const child of children.split(/\s+/)) visit(Number(child)); }
    }
  };
  visit(root);
  return pids;
}

/** The sum of some processes' figures. */
export type MemorySum = Omit<ProcessMemory, "pid"> & { processes: number };

/**
 * Adds up the figures of the processes still running.
 *
 * @param pids The processes.
 * @returns The sums.
 */
export function sumMemory(pids: number[]): MemorySum {
  const sum: MemorySum = {
    rss: 0,
    peak: 0,
    anon: 0,
    file: 0,
    pss: 0,
    private: 0,
    threads: 0,
    processes: 0,
  };
  for (const pid of pids) {
    const figures = readProcessMemory(pid);
    if (figures === null) continue;
    sum.rss += figures.rss;
    sum.peak += figures.peak;
    sum.anon += figures.anon;
    sum.file += figures.file;
    sum.pss += figures.pss;
    sum.private += figures.private;
    sum.threads += figures.threads;
    sum.processes++;
  }
  return sum;
}
