/**
 * How a host's facts size the defaults and bound what it is asked to hold: the connection cap
 * from the open-file limit and memory, the per-address share of it. The option table's
 * host-dependent defaults and `clampToHost` (config.ts) are built on these.
 *
 * @module
 */

import type { HostFacts } from "../host/host_facts.ts";

/** Descriptors kept back from the connection cap for listeners, logs, pipes and the runtime. */
export const RESERVED_FILES = 256;
/** Kernel and server memory budgeted per connection when deriving the cap from memory. */
export const BUDGET_BYTES_PER_CONNECTION = 64 * 1024;
/** Memory budgeted per serving thread (a Worker's heap, its buffers and its share of the runtime). */
export const BUDGET_BYTES_PER_THREAD = 64 * 1024 * 1024;
/** Threads per process beyond which more threads only add context switches. */
export const THREADS_PER_CORE = 4;
/** The most connections any connection setting may name (`max-connections` and the like). */
export const CONNECTIONS_MAX = 10_000_000;
/** The most threads a process may run. */
export const THREADS_MAX = 256;

/**
 * The default per-address cap is the connections all processes hold together divided by this:
 * one address can take at most a quarter of them, so at least four addresses are needed to fill
 * the server.
 */
export const PER_ADDRESS_SHARE = 4;

/**
 * The per-address cap used unless one is set.
 *
 * @param maxConnections Connections per process.
 * @param processes Serving processes.
 * @returns `ceil(maxConnections * processes / PER_ADDRESS_SHARE)`, at least 1 and at most the
 *   key's own bound.
 */
export function defaultPerAddressCap(maxConnections: number, processes: number): number {
  // Bounded like a value an operator sets, so a connection cap asked for beyond the host (and
  // clamped later) never makes the derived default itself invalid.
  const share = Math.ceil((maxConnections * processes) / PER_ADDRESS_SHARE);
  return Math.max(1, Math.min(share, CONNECTIONS_MAX));
}

/**
 * The connection cap a host can hold: its open-file limit less a reserve, and no more than half
 * its memory at {@linkcode BUDGET_BYTES_PER_CONNECTION} each.
 *
 * @param host The host's facts.
 * @returns Connections per process.
 */
export function hostConnectionCap(host: HostFacts): number {
  const byFiles = Math.max(1, host.openFiles - RESERVED_FILES);
  const byMemory = Math.max(1, Math.floor(host.memoryBytes / 2 / BUDGET_BYTES_PER_CONNECTION));
  return Math.min(byFiles, byMemory, CONNECTIONS_MAX);
}
