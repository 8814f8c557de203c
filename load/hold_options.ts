/**
 * The hold workload's options, their defaults and their validation: how many connections, over
 * how many client processes and addresses, at what pace, held how long.
 *
 * @module
 */

import { ConfigError } from "../server/common/config_error.ts";
import { describe } from "../server/common/describe.ts";
import { parseAddressList } from "./address_list.ts";
import { decodeMessage } from "./message_bytes.ts";

/** Options for {@linkcode runHold}; every field is optional. */
export interface HoldOptions {
  /**
   * Server addresses, one or a list or block (`127.0.0.1,127.0.0.2`, `127.0.0.0/26`); the
   * connections go round robin over them. A server bound to 0.0.0.0 answers on every loopback
   * address, and the kernel picks a connection's ephemeral port per (source, destination) pair,
   * so each destination address gives another 28,000 ports without any bind().
   * @default {["127.0.0.1"]}
   */
  hosts?: string[];
  /** @default {9000} */
  port?: number;
  /** Connections to hold at once. @default {10000} */
  connections?: number;
  /**
   * Connections per client process, below its open-file limit.
   * @default {the open-file limit less 512}
   */
  perProcess?: number;
  /** Local addresses to connect from (node:net's localAddress), round robin; empty: the kernel's choice. @default {[]} */
  sources?: string[];
  /** New connections per second over all processes; 0 for as fast as handshakes finish. @default {20000} */
  rate?: number;
  /**
   * Connections between connect and first reply at most, over all processes: what can wait in
   * the server's accept queues at once. At most a listener's backlog (512 on Bun, 511 on Deno)
   * guarantees none overflows, whatever the SO_REUSEPORT hash does.
   * @default {500}
   */
  inFlight?: number;
  /** How long to hold every connection before asking each again, in ms. @default {10000} */
  holdMs?: number;
  /** Longest the set-up may take before holding what is open, in ms. @default {600000} */
  setupTimeoutMs?: number;
  /** A reply later than this is an error, in ms. @default {10000} */
  timeoutMs?: number;
  /** Request bytes. @default {"PING\r\n"} */
  message?: Uint8Array;
  /** @default {"Hello World"} */
  greeting?: string;
  /** The server's pid, for its process tree's RSS; `null` to leave it out. @default {null} */
  serverPid?: number | null;
  /** Fresh connect-send-reply-close clients during the hold, one at a time. @default {200} */
  probes?: number;
  /** Where the fresh clients connect from (an address the holders do not use). @default {"127.0.9.1"} */
  probeSource?: string;
  /**
   * Write every number the holders and fresh clients were answered with to this file, one a
   * line, ascending (so an independent client's numbers can be checked against them).
   * @default {null}
   */
  numbersOut?: string | null;
  /** Stop (and report) when the machine's available memory falls below this. @default {512 MiB} */
  minFreeBytes?: number;
}

/** A validated, complete set of hold options. */
export type HoldConfig = Required<HoldOptions>;

/** Bounds of the numeric options. */
export const HOLD_LIMITS = {
  connections: { min: 1, max: 10_000_000 },
  perProcess: { min: 1, max: 1_000_000 },
  rate: { min: 0, max: 10_000_000 },
  inFlight: { min: 1, max: 1_000_000 },
  probes: { min: 0, max: 1_000_000 },
  port: { min: 1, max: 65535 },
} as const;

/** Descriptors each client process keeps for itself (stdio, the runtime's own files). */
export const CLIENT_RESERVED_FILES = 512;

function integerIn(flag: string, value: unknown, bounds: { min: number; max: number }): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < bounds.min ||
    value > bounds.max
  ) {
    throw new ConfigError(
      flag,
      `'${flag}' must be an integer from ${bounds.min} to ${bounds.max}: got ${describe(value)}`,
    );
  }
  return value;
}

/**
 * Validates hold options and fills in defaults.
 *
 * @param options What the caller set.
 * @param openFiles This process's open-file limit (client processes inherit it).
 * @returns The complete options.
 * @throws {ConfigError} For a value out of bounds, naming the flag.
 */
export function resolveHoldOptions(options: HoldOptions, openFiles: number): HoldConfig {
  const perProcess = integerIn(
    "per-process",
    options.perProcess ?? Math.max(1, openFiles - CLIENT_RESERVED_FILES),
    HOLD_LIMITS.perProcess,
  );
  if (perProcess > openFiles - 16) {
    throw new ConfigError(
      "per-process",
      `'per-process' must leave room under the open-file limit ${openFiles}: got ${perProcess}; ` +
        `use at most ${openFiles - CLIENT_RESERVED_FILES} or raise 'ulimit -n'`,
    );
  }
  const hosts = options.hosts ?? ["127.0.0.1"];
  if (hosts.length === 0) throw new ConfigError("host", `'host' must name an address: got none`);
  const greeting = options.greeting ?? "Hello World";
  if (/[\r\n]/.test(greeting)) {
    throw new ConfigError("greeting", `'greeting' must be text without line breaks`);
  }
  const message = options.message ?? decodeMessage("PING\\r\\n");
  if (message.length === 0) {
    throw new ConfigError("message", `'message' must not be empty for the hold workload`);
  }
  const serverPid = options.serverPid ?? null;
  if (serverPid !== null) integerIn("server-pid", serverPid, { min: 1, max: 2 ** 31 });
  const probeSource = options.probeSource ?? "127.0.9.1";
  parseAddressList("probe-source", probeSource);
  return {
    hosts,
    port: integerIn("port", options.port ?? 9000, HOLD_LIMITS.port),
    connections: integerIn("connections", options.connections ?? 10_000, HOLD_LIMITS.connections),
    perProcess,
    sources: options.sources ?? [],
    rate: integerIn("rate", options.rate ?? 20_000, HOLD_LIMITS.rate),
    inFlight: integerIn("in-flight", options.inFlight ?? 500, HOLD_LIMITS.inFlight),
    holdMs: integerIn("hold", options.holdMs ?? 10_000, { min: 0, max: 3_600_000 }),
    setupTimeoutMs: integerIn("setup-timeout", options.setupTimeoutMs ?? 600_000, {
      min: 1,
      max: 3_600_000,
    }),
    timeoutMs: integerIn("timeout", options.timeoutMs ?? 10_000, { min: 1, max: 3_600_000 }),
    message,
    greeting,
    serverPid,
    probes: integerIn("probes", options.probes ?? 200, HOLD_LIMITS.probes),
    probeSource,
    numbersOut: options.numbersOut ?? null,
    minFreeBytes: integerIn("min-free", options.minFreeBytes ?? 512 * 1024 ** 2, {
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
    }),
  };
}

/**
 * Client processes a number of connections needs.
 *
 * @param connections Connections to hold.
 * @param perProcess Connections one process may hold.
 * @returns At least 1.
 */
export function holdProcesses(connections: number, perProcess: number): number {
  return Math.max(1, Math.ceil(connections / perProcess));
}
