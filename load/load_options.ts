/**
 * What a load run does: its options, their defaults and their validation. Every check runs
 * before a connection is opened, and an error names the flag, its bounds and what was given.
 *
 * @module
 */

import { isIP } from "node:net";
import { ConfigError, ConfigShapeError } from "../server/common/config_error.ts";
import { describe } from "../server/common/describe.ts";
import { decodeMessage } from "./message_bytes.ts";

/**
 * - `closed`: persistent connections, one request in flight on each.
 * - `pipelined`: persistent connections, batches of `depth` requests in flight on each.
 * - `connect`: connect, send, read the reply, close, again; `connections` run at once.
 * - `idle`: open the connections, one request and reply each, then hold them open (for memory).
 * - `hold`: `idle` spread over client processes and addresses, paced, then every connection
 *   asked again after the hold (load/run_hold.ts; many processes, up to millions).
 */
export type Workload = "closed" | "pipelined" | "connect" | "idle" | "hold";

/** The workloads, in the order usage text lists them. */
export const WORKLOADS: readonly Workload[] = ["closed", "pipelined", "connect", "idle", "hold"];

/** Options for a load run; every field is optional. */
export interface LoadOptions {
  /**
   * Address of the server under test.
   * @default {"127.0.0.1"}
   */
  host?: string;
  /**
   * Its TCP port.
   * @default {9000}
   */
  port?: number;
  /**
   * What each connection does (see {@linkcode Workload}).
   * @default {"closed"}
   */
  workload?: Workload;
  /**
   * Connections open at once (for `connect`: connect-send-close loops running at once).
   * @default {50}
   */
  connections?: number;
  /**
   * Requests per batch on each connection, `pipelined` only (the others have exactly one in
   * flight): a batch of `depth` lines goes out in one write once the previous batch is answered,
   * as redis-benchmark's `-P`.
   * @default {100}
   */
  depth?: number;
  /**
   * How long to send requests, in milliseconds; the run always ends by then plus `timeoutMs`.
   * @default {10000}
   */
  durationMs?: number;
  /**
   * Stop after this many requests (for `connect`: connections), if that comes before the
   * duration; `null` for no limit but the duration.
   * @default {null}
   */
  count?: number | null;
  /**
   * Worker threads that share the connections.
   * @default {the number of cores, at most `connections`}
   */
  threads?: number;
  /**
   * The request bytes. `pipelined` needs exactly one line (ending in `\n`); `connect` may send
   * nothing, for servers that speak first.
   * @default {"PING\r\n"} (a line for tallyho's line framing and Redis's inline protocol alike)
   */
  message?: Uint8Array;
  /**
   * Local address to connect from, e.g. `127.0.0.2` (another source address, other ephemeral
   * ports); `null` lets the kernel choose.
   * @default {null}
   */
  source?: string | null;
  /**
   * Milliseconds a request may wait for its reply before it counts as an error; also how long
   * the end of a run waits for replies in flight.
   * @default {5000}
   */
  timeoutMs?: number;
  /**
   * Text a numbered reply starts with; lines that start otherwise are counted, not checked.
   * @default {"Hello World"}
   */
  greeting?: string;
}

/** A validated, complete set of options. */
export type LoadConfig = Required<LoadOptions>;

/** The flag each option is set with, so errors speak the user's words. */
export const LOAD_FLAG_NAMES: Record<keyof LoadOptions, string> = {
  host: "host",
  port: "port",
  workload: "workload",
  connections: "connections",
  depth: "depth",
  durationMs: "duration",
  count: "count",
  threads: "threads",
  message: "message",
  source: "source",
  timeoutMs: "timeout",
  greeting: "greeting",
};

/** Bounds of the numeric options. */
export const LOAD_LIMITS = {
  port: { min: 1, max: 65535 },
  connections: { min: 1, max: 100_000 },
  depth: { min: 1, max: 100_000 },
  durationMs: { min: 1, max: 3_600_000 },
  count: { min: 1, max: Number.MAX_SAFE_INTEGER },
  threads: { min: 1, max: 256 },
  timeoutMs: { min: 1, max: 3_600_000 },
  messageBytes: { min: 0, max: 65536 },
} as const;

const DEFAULT_MESSAGE = decodeMessage("PING\\r\\n");

function integerIn(name: keyof typeof LOAD_LIMITS & keyof LoadOptions, value: unknown): number {
  const { min, max } = LOAD_LIMITS[name];
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(
      LOAD_FLAG_NAMES[name],
      `'${LOAD_FLAG_NAMES[name]}' must be an integer from ${min} to ${max}: got ${describe(value)}`,
    );
  }
  return value;
}

function checkMessage(message: unknown, workload: Workload): Uint8Array {
  if (!(message instanceof Uint8Array)) {
    throw new ConfigError("message", `'message' must be bytes: got ${describe(message)}`);
  }
  if (message.length > LOAD_LIMITS.messageBytes.max) {
    throw new ConfigError(
      "message",
      `'message' must be at most ${LOAD_LIMITS.messageBytes.max} bytes: got ${message.length}`,
    );
  }
  if (message.length === 0 && workload !== "connect") {
    throw new ConfigError(
      "message",
      `'message' may be empty only for the connect workload (the server speaks first): got an empty message with ${workload}`,
    );
  }
  if (workload === "pipelined") {
    const newlines = message.filter((byte) => byte === 10).length;
    if (newlines !== 1 || message[message.length - 1] !== 10) {
      throw new ConfigError(
        "message",
        `'message' must be exactly one line ending in \\n for the pipelined workload (one request, one reply): got ${message.length} bytes with ${newlines} line breaks`,
      );
    }
  }
  return message;
}

/**
 * Validates options and fills in defaults.
 *
 * @param options What the caller set; unknown keys are rejected.
 * @param cores Cores on this machine, for the default thread count.
 * @returns The complete options.
 * @throws {ConfigShapeError} For an unknown key.
 * @throws {ConfigError} For a value of the wrong type or out of bounds, naming the flag.
 *
 * @example
 * ```ts
 * const config = resolveLoadOptions({ port: 9000, workload: "pipelined", depth: 10 }, 2);
 * ```
 */
export function resolveLoadOptions(options: LoadOptions, cores: number): LoadConfig {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ConfigShapeError(
      undefined,
      `Load options must be an object: got ${describe(options)}`,
    );
  }
  for (const key of Object.keys(options)) {
    if (!(key in LOAD_FLAG_NAMES)) {
      throw new ConfigShapeError(key, `Unknown load option '${key}'`);
    }
  }
  const workload = options.workload ?? "closed";
  if (!WORKLOADS.includes(workload)) {
    throw new ConfigError(
      "workload",
      `'workload' must be one of ${WORKLOADS.join(", ")}: got ${describe(workload)}`,
    );
  }
  const host = options.host ?? "127.0.0.1";
  if (typeof host !== "string" || host.length === 0) {
    throw new ConfigError("host", `'host' must be a non-empty address: got ${describe(host)}`);
  }
  const source = options.source ?? null;
  if (source !== null && (typeof source !== "string" || isIP(source) === 0)) {
    throw new ConfigError(
      "source",
      `'source' must be a local IP address such as 127.0.0.2: got ${describe(source)}`,
    );
  }
  if (options.depth !== undefined && workload !== "pipelined" && options.depth !== 1) {
    throw new ConfigError(
      "depth",
      `'depth' applies to the pipelined workload only (${workload} has one request in flight): got ${
        describe(options.depth)
      }`,
    );
  }
  const greeting = options.greeting ?? "Hello World";
  if (typeof greeting !== "string" || /[\r\n]/.test(greeting)) {
    throw new ConfigError(
      "greeting",
      `'greeting' must be text without line breaks: got ${describe(greeting)}`,
    );
  }
  const connections = integerIn("connections", options.connections ?? 50);
  const count = options.count ?? null;
  return {
    host,
    port: integerIn("port", options.port ?? 9000),
    workload,
    connections,
    depth: workload === "pipelined" ? integerIn("depth", options.depth ?? 100) : 1,
    durationMs: integerIn("durationMs", options.durationMs ?? 10_000),
    count: count === null ? null : integerIn("count", count),
    threads: integerIn("threads", options.threads ?? Math.max(1, Math.min(cores, connections))),
    message: checkMessage(options.message ?? DEFAULT_MESSAGE, workload),
    source,
    timeoutMs: integerIn("timeoutMs", options.timeoutMs ?? 5000),
    greeting,
  };
}
