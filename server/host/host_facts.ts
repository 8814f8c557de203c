/**
 * What this host can hold, read once at start: cores, the open-file limit and memory. The pools'
 * defaults (threads, the connection cap) are derived from these, and every configuration change
 * is clamped to them.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import { parseOpenFileLimit } from "./open_file_limit.ts";

/** What the defaults are derived from and what a configuration is clamped to. */
export interface HostFacts {
  /** Cores to size the thread pool for. */
  cores: number;
  /** The process's open-file limit (the runtimes raise the soft limit to the hard one). */
  openFiles: number;
  /** Memory in bytes. */
  memoryBytes: number;
}

/** Used when /proc cannot be read: a common default soft limit. */
const FALLBACK_OPEN_FILES = 1024;

/**
 * Reads this process's host facts.
 *
 * @returns Cores, open-file limit (soft; Bun and Deno raise it to the hard limit at start) and
 *   total memory.
 */
export function readHostFacts(): HostFacts {
  let openFiles = FALLBACK_OPEN_FILES;
  try {
    const limit = parseOpenFileLimit(readFileSync("/proc/self/limits", "utf8"));
    openFiles = Number.isFinite(limit.soft) ? limit.soft : 1_000_000;
  } catch {
    // Not Linux, or no /proc: keep the fallback; the start line shows the cap in force.
  }
  return { cores: availableParallelism(), openFiles, memoryBytes: totalmem() };
}
