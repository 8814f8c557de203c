/**
 * Memory figures of this machine and of a process tree, read from /proc: what the hold workload
 * reports beside the connections (server RSS per connection, kernel memory per connection) and
 * what stops it before the machine runs out.
 *
 * @module
 */

import { readdirSync, readFileSync } from "node:fs";

/** What /proc/meminfo and /proc/net/sockstat say, in bytes and counts. */
export interface MachineMemory {
  /** MemTotal. */
  totalBytes: number;
  /** MemAvailable: what can still be given to processes without swapping. */
  availableBytes: number;
  /** Slab: the kernel's object caches, where sockets, files and dentries live. */
  slabBytes: number;
  /** TCP sockets in use (sockstat `TCP: inuse`). */
  tcpInUse: number;
  /** TCP buffer memory (sockstat `TCP: mem`, in pages, times 4096). */
  tcpBufferBytes: number;
}

function readOr(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

function meminfoField(text: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
  return match === null ? 0 : Number(match[1]) * 1024;
}

/**
 * Reads this machine's memory figures; zeros where /proc cannot be read.
 *
 * @returns The figures.
 */
export function readMachineMemory(): MachineMemory {
  const meminfo = readOr("/proc/meminfo");
  const sockstat = readOr("/proc/net/sockstat");
  const tcp = /^TCP: inuse (\d+) .*mem (\d+)/m.exec(sockstat);
  return {
    totalBytes: meminfoField(meminfo, "MemTotal"),
    availableBytes: meminfoField(meminfo, "MemAvailable"),
    slabBytes: meminfoField(meminfo, "Slab"),
    tcpInUse: tcp === null ? 0 : Number(tcp[1]),
    tcpBufferBytes: tcp === null ? 0 : Number(tcp[2]) * 4096,
  };
}

/** Clock ticks per second of /proc/PID/stat's times (USER_HZ, 100 on every Linux build). */
const USER_HZ = 100;

/** A process tree's memory and CPU time. */
export interface TreeUsage {
  /** The sum of the processes' RSS (VmRSS). */
  bytes: number;
  /**
   * The sum of their anonymous and shared-memory RSS (RssAnon + RssShmem): heaps, stacks, buffers,
   * what each process holds for itself. RSS less this is file pages (RssFile): the program's code
   * and the runtime's, the same pages in every process of the tree (and in the page cache once),
   * counted again in each process's RSS.
   */
  anonBytes: number;
  /** Processes in the tree. */
  processes: number;
  /** Their CPU seconds, user + system. */
  cpuSeconds: number;
}

/**
 * Sums the resident memory and CPU time of a process and all its descendants (a supervisor and
 * its serving processes).
 *
 * @param rootPid The tree's root.
 * @returns The sums, or `null` when the root is gone.
 */
export function readTreeRss(rootPid: number): TreeUsage | null {
  const parents = new Map<number, number[]>();
  const ticks = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return null;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readOr(`/proc/${entry}/stat`);
    // The command name in parentheses may hold spaces; the parent pid is the 2nd field after it.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(fields[1]);
    if (!Number.isInteger(ppid)) continue;
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the command name.
    ticks.set(Number(entry), Number(fields[11]) + Number(fields[12]));
    const list = parents.get(ppid) ?? [];
    list.push(Number(entry));
    parents.set(ppid, list);
  }
  let bytes = 0;
  let anonBytes = 0;
  let processes = 0;
  let cpuTicks = 0;
  const queue = [rootPid];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    const status = readOr(`/proc/${pid}/status`);
    if (status === "") {
      if (pid === rootPid) return null;
      continue;
    }
    bytes += meminfoField(status, "VmRSS");
    anonBytes += meminfoField(status, "RssAnon") + meminfoField(status, "RssShmem");
    processes++;
    cpuTicks += ticks.get(pid) ?? 0;
    queue.push(...(parents.get(pid) ?? []));
  }
  return { bytes, anonBytes, processes, cpuSeconds: cpuTicks / USER_HZ };
}
