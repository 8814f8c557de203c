/**
 * Reads the kernel's TCP settings that decide how a listener stands up to floods, straight from
 * `/proc/sys` (node:fs, so it reads the same on Bun, Deno and the compiled binary).
 *
 * `/proc/sys/net` belongs to the network namespace of the process that reads it, so run under
 * `ip netns exec NAME` it reports that namespace's values.
 *
 * @module
 */

import { readFile as fsReadFile } from "node:fs/promises";
import { errorReason } from "./_error_reason.ts";

/** The sysctls the doctor checks, in the order it reports them. */
export const SYSCTL_NAMES = [
  "net.ipv4.tcp_syncookies",
  "net.ipv4.tcp_max_syn_backlog",
  "net.ipv4.tcp_synack_retries",
  "net.core.somaxconn",
  "net.ipv4.tcp_abort_on_overflow",
  "net.ipv4.tcp_migrate_req",
  "net.ipv4.ip_local_port_range",
] as const;

/** One of {@linkcode SYSCTL_NAMES}. */
export type SysctlName = typeof SYSCTL_NAMES[number];

/** A sysctl's value as the kernel prints it (whitespace runs made one space), or why it is missing. */
export type SysctlReading = { value: string } | { error: string };

/** Where the doctor reads the host from; tests point it at a directory of fake values. */
export interface ProcOptions {
  /**
   * The directory that stands for `/proc`.
   *
   * @default {"/proc"}
   */
  procRoot?: string;
  /**
   * Reads one file as text; rejects when it cannot.
   *
   * @default {node:fs/promises readFile, as UTF-8}
   */
  readFile?: (path: string) => Promise<string>;
}

/** The default file reader. */
export const readTextFile = (path: string): Promise<string> => fsReadFile(path, "utf8");

/**
 * The file that holds a sysctl: `net.ipv4.tcp_syncookies` -> `<procRoot>/sys/net/ipv4/tcp_syncookies`.
 *
 * @param name The sysctl.
 * @param procRoot The directory that stands for `/proc`.
 * @returns The path.
 */
export function sysctlPath(name: string, procRoot = "/proc"): string {
  return `${procRoot}/sys/${name.replaceAll(".", "/")}`;
}

/**
 * Reads every sysctl in {@linkcode SYSCTL_NAMES}. A file that cannot be read (a kernel too old
 * for `tcp_migrate_req`, a container that hides `/proc/sys`) becomes an error entry rather than a
 * failure, so the other items are still reported.
 *
 * @param options Where to read from.
 * @returns Each sysctl's reading.
 *
 * @example
 * ```ts
 * const sysctls = await readSysctls();
 * console.log(sysctls["net.ipv4.tcp_syncookies"]); // { value: "1" }
 * ```
 */
export async function readSysctls(
  options: ProcOptions = {},
): Promise<Record<SysctlName, SysctlReading>> {
  const procRoot = options.procRoot ?? "/proc";
  const readFile = options.readFile ?? readTextFile;
  const entries = await Promise.all(SYSCTL_NAMES.map(async (name) => {
    const path = sysctlPath(name, procRoot);
    try {
      const text = (await readFile(path)).trim().replace(/\s+/g, " ");
      return [name, { value: text }] as const;
    } catch (error) {
      return [name, { error: `cannot read ${path}: ${errorReason(error)}` }] as const;
    }
  }));
  return Object.fromEntries(entries) as Record<SysctlName, SysctlReading>;
}
