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
 * Finds the listener on `port` now, when it has just been bound, and returns what says which
 * descriptor it is later: the scan reads every TCP socket of the network namespace, which under
 * load (thousands in TIME_WAIT) takes a second of this event loop, too long for the moment of an
 * upgrade; checking one descriptor's link later costs microseconds. A descriptor that no longer
 * links to that socket is looked up again.
 *
 * @param port The port it listens on.
 * @returns A function that gives the descriptor, or null when there is none.
 */
export function listenerFdOf(port: number): () => number | null {
  let found = findListener(port);
  return () => {
    if (found !== null) {
      try {
        if (readlinkSync(`/proc/self/fd/${found.fd}`) === found.link) return found.fd;
      } catch {
        // Closed since: looked up again below.
      }
    }
    found = findListener(port);
    return found?.fd ?? null;
  };
}

/** The descriptor of this process's listening TCP socket on `port`, and its link, or null. */
function findListener(port: number): { fd: number; link: string } | null {
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
    if (inode !== undefined && inodes.has(inode)) return { fd: Number(name), link };
  }
  return null;
}
