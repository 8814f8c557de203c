/**
 * What this host can hold, read once at start: cores, the open-file limit and memory. The pools'
 * defaults (threads, the connection cap) are derived from these.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import type { HostFacts } from "./config.ts";
import { parseOpenFileLimit } from "./doctor/read_open_files.ts";

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
