/**
 * Finds the descriptor of a listening TCP socket this process holds, by port: an upgrade passes
 * the admin API's listener to the tree that takes over (as nginx and HAProxy pass theirs), since
 * that port is bound without SO_REUSEPORT and cannot be bound twice. Neither runtime says which
 * descriptor a listener is (Deno's are resources, Bun's node:net handle is private), so it is
 * read from Linux's `/proc`: the listening socket's inode in `/proc/self/net/tcp{,6}`, then the
 * descriptor that links to it in `/proc/self/fd`.
 *
 * @module
 */

import { readdirSync, readFileSync, readlinkSync } from "node:fs";

const LISTEN = "0A";

/**
 * The descriptor of this process's listening TCP socket on `port`.
 *
 * @param port The port it listens on.
 * @returns The descriptor, or null when there is none (or no `/proc` to find it in).
 */
export function findListenerFd(port: number): number | null {
  const inodes = new Set<string>();
  for (const table of ["/proc/self/net/tcp", "/proc/self/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      if (fields.length < 10 || local === undefined || fields[3] !== LISTEN) continue;
      if (parseInt(local.slice(local.lastIndexOf(":") + 1), 16) === port) inodes.add(fields[9]!);
    }
  }
  if (inodes.size === 0) return null;
  let names: string[];
  try {
    names = readdirSync("/proc/self/fd");
  } catch {
    return null;
  }
  for (const name of names) {
    let link: string;
    try {
      link = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue;
    }
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
    if (inode !== undefined && inodes.has(inode)) return Number(name);
  }
  return null;
}
