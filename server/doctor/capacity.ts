/**
 * `tallyho doctor --connections N`: what holding N connections at once needs of this host, and
 * how many processes it takes here. Pure: it judges values already read, so tests feed it any.
 *
 * The per-connection figures are what bench/million.sh measured on this project's 2-core,
 * 24 GiB machine (Bun 1.4.5; see docs/tuning.md): estimates to size a host, not promises.
 *
 * @module
 */

import { LIMITS } from "../config/resolve_config.ts";
import { RESERVED_FILES } from "../config/host_sizing.ts";
import { hardLimitAdvice } from "./checks.ts";
import type { DoctorItem } from "./checks.ts";
import type { OpenFileLimit } from "../host/open_file_limit.ts";

/** Measured and budgeted costs a capacity plan is sized with. */
export const CAPACITY_COSTS = {
  /** Kernel slab per TCP socket (tcp_sock, inode, dentry, file, epoll entry), measured. */
  kernelBytesPerSocket: 4800,
  /** Server RSS per held connection on Bun, measured (Deno holds more). */
  serverBytesPerConnection: 1400,
  /** RSS of one serving process (one thread) before any connection. */
  serverProcessBytes: 55 * 1024 ** 2,
  /** A `tallyho load --workload hold` client process: before any connection, and per one. */
  clientProcessBytes: 45 * 1024 ** 2,
  clientBytesPerConnection: 2000,
  /** Memory left over for everything else on the host. */
  headroomBytes: 1024 ** 3,
  /** Pages a socket with data queued holds at least (one), for the tcp_mem check. */
  pagesPerBusySocket: 1,
  /** Descriptors a load client process keeps for itself. */
  clientReservedFiles: 512,
} as const;

/** What the capacity checks judge. */
export interface CapacityFacts {
  /** Connections to hold. */
  connections: number;
  openFiles: OpenFileLimit | { error: string };
  /**
   * Whether `ulimit -Hn` to the limit the plan asks for works here (null: not asked, or cannot
   * tell); see {@linkcode capacityHardLimit}.
   * @default {null}
   */
  hardLimitRaisable?: boolean | null;
  /** fs.nr_open, fs.file-max, net.ipv4.tcp_mem, ip_local_port_range, somaxconn and max_syn_backlog as read; `null` when unreadable. */
  nrOpen: string | null;
  fileMax: string | null;
  tcpMem: string | null;
  localPortRange: string | null;
  somaxconn: string | null;
  synBacklog: string | null;
  /** MemAvailable and MemTotal in bytes; `null` when unreadable. */
  memAvailableBytes: number | null;
  memTotalBytes: number | null;
}

/** The plan: processes needed and the items judged. */
export interface CapacityPlan {
  connections: number;
  /** Serving processes (one thread each) the connections need under the open-file limit. */
  serverProcesses: number;
  /** Connections one serving process holds at most (its open-file limit less the reserve). */
  perServerProcess: number;
  /** Client processes a loopback benchmark (`tallyho load --workload hold`) needs. */
  clientProcesses: number;
  /** Server addresses (or source addresses) a loopback benchmark needs for its ports. */
  addresses: number;
  /** Estimated memory: the server alone, and with loopback clients on the same host. */
  serverBytes: number;
  loopbackBytes: number;
  items: DoctorItem[];
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
const count = (n: number) => n.toLocaleString("en-US");

/**
 * The open-file limit the plan asks each server process for, when `connections` need more
 * processes than one supervisor runs at the limit in force; null when they do not.
 *
 * @param connections Connections to hold.
 * @param openFiles The limit in force.
 * @returns The limit to raise to, or null.
 */
export function capacityHardLimit(
  connections: number,
  openFiles: OpenFileLimit | { error: string },
): number | null {
  const soft = "error" in openFiles ? 1024 : openFiles.soft;
  const perServer = Math.max(1, Math.min(soft, 10_000_000) - RESERVED_FILES);
  const maxProcesses = LIMITS.processes.max;
  return Math.ceil(connections / perServer) > maxProcesses
    ? Math.ceil(connections / maxProcesses) + RESERVED_FILES
    : null;
}

/**
 * Sizes a host for `connections` held at once.
 *
 * @param facts What was read.
 * @returns The plan.
 */
export function planCapacity(facts: CapacityFacts): CapacityPlan {
  const n = facts.connections;
  const c = CAPACITY_COSTS;
  const items: DoctorItem[] = [];
  const soft = "error" in facts.openFiles ? 1024 : facts.openFiles.soft;
  const perServer = Math.max(1, Math.min(soft, 10_000_000) - RESERVED_FILES);
  const serverProcesses = Math.ceil(n / perServer);
  const perClient = Math.max(1, Math.min(soft, 10_000_000) - c.clientReservedFiles);
  const clientProcesses = Math.ceil(n / perClient);
  const maxProcesses = LIMITS.processes.max;
  const target = capacityHardLimit(n, facts.openFiles);
  const advice = target === null ? null : hardLimitAdvice(target, facts.hardLimitRaisable ?? null);
  items.push({
    name: "open files per process",
    value: "error" in facts.openFiles ? null : `${facts.openFiles.soft}`,
    verdict: serverProcesses > maxProcesses ? "bad" : "ok",
    why: `One descriptor per connection: a serving process holds ${count(perServer)} ` +
      `(the limit less ${RESERVED_FILES} kept back), so ${count(n)} connections need ` +
      `${serverProcesses} processes (tallyho --processes ${serverProcesses} --threads 1)` +
      (advice === null
        ? "."
        : `, more than the ${maxProcesses} one supervisor runs; raise the limit (up to ` +
          `fs.nr_open). ${advice.how}`),
    fix: advice?.fix ?? null,
  });
  const nrOpen = facts.nrOpen === null ? null : Number(facts.nrOpen);
  items.push({
    name: "fs.nr_open",
    value: facts.nrOpen,
    verdict: nrOpen === null ? "risky" : "ok",
    why: nrOpen === null
      ? "Could not read the most any process's open-file limit may be raised to."
      : `The most 'ulimit -n' may be raised to: one process could hold ${count(nrOpen)}; ` +
        `with a limit that high, ${Math.ceil(n / Math.max(1, nrOpen - RESERVED_FILES))} ` +
        `process(es) would do.`,
    fix: null,
  });
  const fileMax = facts.fileMax === null ? null : Number(facts.fileMax);
  const filesNeeded = 2 * n + 100_000;
  items.push({
    name: "fs.file-max",
    value: facts.fileMax,
    verdict: fileMax === null ? "risky" : fileMax >= filesNeeded ? "ok" : "bad",
    why: `Open files on the whole host: the server's ${count(n)} plus as many for clients on ` +
      `the same host (a loopback benchmark) and some room: ${count(filesNeeded)}.`,
    fix: fileMax !== null && fileMax < filesNeeded ? `sysctl -w fs.file-max=${filesNeeded}` : null,
  });
  const tcpMax = facts.tcpMem === null ? null : Number(facts.tcpMem.split(" ")[2]);
  const pagesNeeded = n * c.pagesPerBusySocket;
  items.push({
    name: "net.ipv4.tcp_mem",
    value: facts.tcpMem,
    verdict: tcpMax === null || !Number.isFinite(tcpMax)
      ? "risky"
      : tcpMax >= pagesNeeded
      ? "ok"
      : "risky",
    why: "Pages all TCP buffers may hold (low, pressure, max). A held idle connection holds " +
      "none, but one with a message queued holds a page: if all " + count(n) + " get one at " +
      `once, that is ${count(pagesNeeded)} pages` +
      (tcpMax !== null && tcpMax < pagesNeeded
        ? `, past the max, where the kernel drops segments ("TCP: out of memory")`
        : "") +
      ".",
    fix: tcpMax !== null && tcpMax < pagesNeeded
      ? `sysctl -w net.ipv4.tcp_mem="${Math.ceil(pagesNeeded / 2)} ${
        Math.ceil(pagesNeeded * 0.75)
      } ${pagesNeeded * 2}"`
      : null,
  });
  const somaxconn = facts.somaxconn === null ? null : Number(facts.somaxconn);
  items.push({
    name: "net.core.somaxconn",
    value: facts.somaxconn,
    verdict: somaxconn !== null && somaxconn >= 4096 ? "ok" : "risky",
    why: "Each serving process has its own accept queue (SO_REUSEPORT), as long as the " +
      "runtime's backlog (512 on Bun) capped by this. Connecting faster than the processes " +
      "accept overflows it (nstat TcpExtListenOverflows): the SYN-ACK is dropped and the " +
      "client retries after 1 s, then 3 s. tallyho load --workload hold bounds its " +
      "handshakes in flight (--in-flight) so it never does.",
    fix: somaxconn !== null && somaxconn >= 4096 ? null : "sysctl -w net.core.somaxconn=4096",
  });
  items.push({
    name: "net.ipv4.tcp_max_syn_backlog",
    value: facts.synBacklog,
    verdict: "ok",
    why: "Half-open connections per listener; with SYN cookies on, a full queue costs no " +
      "connection, and bounded handshakes never fill it.",
    fix: null,
  });
  const range = facts.localPortRange?.split(" ").map(Number) ?? [];
  const ports = range.length === 2 && range[1]! >= range[0]! ? range[1]! - range[0]! + 1 : 28232;
  // connect() takes the ports of one parity first and, once they are gone, scans them all before
  // the other half for every connection (measured in docs/tuning.md): plan on half the range.
  const addresses = Math.ceil(n / Math.floor(ports / 2));
  items.push({
    name: "ephemeral ports per address",
    value: facts.localPortRange === null ? null : `${facts.localPortRange} (${count(ports)})`,
    verdict: "ok",
    why: `A client address pair (source, destination) gives ${count(ports)} ports, but ` +
      `connect() slows to a crawl once the ${count(Math.floor(ports / 2))} of one parity are ` +
      `taken, so clients on this host need ${addresses} address pairs for ${count(n)}: spread ` +
      `the server addresses (a server on 0.0.0.0 answers on all of 127.0.0.0/8: tallyho load ` +
      `--workload hold --host 127.0.0.0/24) or the source addresses (--source 127.0.1.0/24; a ` +
      `bind() before connect() takes a port for the source address alone, whatever the ` +
      `destination).`,
    fix: null,
  });
  const serverBytes = c.serverProcessBytes * serverProcesses + n *
      (c.serverBytesPerConnection + c.kernelBytesPerSocket);
  const loopbackBytes = serverBytes + c.clientProcessBytes * clientProcesses +
    n * (c.clientBytesPerConnection + c.kernelBytesPerSocket);
  const available = facts.memAvailableBytes;
  items.push({
    name: "memory available",
    value: available === null ? null : gib(available),
    verdict: available === null
      ? "risky"
      : available >= loopbackBytes + c.headroomBytes
      ? "ok"
      : available >= serverBytes + c.headroomBytes
      ? "risky"
      : "bad",
    why: `About ${gib(serverBytes)} for the server (${serverProcesses} processes, ` +
      `${c.serverBytesPerConnection} bytes a connection in them and ` +
      `${c.kernelBytesPerSocket} in the kernel), ${gib(loopbackBytes)} with loopback clients ` +
      `on the same host (${clientProcesses} client processes), and 1 GiB to spare.`,
    fix: null,
  });
  return {
    connections: n,
    serverProcesses,
    perServerProcess: perServer,
    clientProcesses,
    addresses,
    serverBytes,
    loopbackBytes,
    items,
  };
}
