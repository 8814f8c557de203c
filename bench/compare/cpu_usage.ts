/**
 * Machine-wide CPU time from /proc/stat, to tell a clean measurement from one that shared its
 * cores with other work: this machine's two cores are shared, and pinning keeps the servers
 * apart from the client but not from everything else.
 *
 * @module
 */

import { readFileSync } from "node:fs";

/** USER_HZ: clock ticks per second in /proc/stat (100 on Linux). */
const TICKS_PER_SECOND = 100;

/**
 * CPU seconds spent running tasks (user, nice, system) on all cores since boot. Interrupt and
 * softirq time are left out: with IRQ time accounting they are charged to no process, so they
 * would look like other work when they are the loopback traffic of the run itself.
 *
 * @returns Seconds, or `null` when /proc/stat cannot be read.
 */
export function machineBusySeconds(): number | null {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
    const [user, nice, system] = line.trim().split(/\s+/).slice(1, 4).map(Number);
    return (user! + nice! + system!) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/**
 * CPU seconds one core has been busy since boot, kernel interrupt and softirq work included:
 * on loopback, much of a server's network work runs in softirq on its own core and is charged
 * to no process, so this, not the process's CPU time, says whether the core was full.
 *
 * @param core The core's index.
 * @returns Seconds, or `null` when /proc/stat has no such core.
 */
export function coreBusySeconds(core: number): number | null {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n").find((l) =>
      l.startsWith(`cpu${core} `)
    );
    if (line === undefined) return null;
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9)
      .map(Number);
    return (user! + nice! + system! + irq! + softirq! + steal!) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/**
 * CPU seconds the whole machine has been busy since boot, interrupt and softirq work included:
 * between runs nothing of the comparison's is busy, so this is what others are doing.
 *
 * @returns Seconds, or `null` when /proc/stat cannot be read.
 */
export function machineBusyAllSeconds(): number | null {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9)
      .map(Number);
    return (user! + nice! + system! + irq! + softirq! + steal!) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}
