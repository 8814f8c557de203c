/**
 * The seam between the load engine and a runtime's sockets.
 *
 * @module
 */

import type { LoadConnection } from "../load_connection.ts";
import type { Runtime } from "../../server/runtime.ts";

/** What a transport tells the engine. Called with the slot's {@linkcode LoadConnection}. */
export interface TransportEvents {
  /** The connection is established; `connection.handle` is set. */
  opened(connection: LoadConnection): void;
  /** Bytes arrived; `chunk` is only valid during the call. */
  received(connection: LoadConnection, chunk: Uint8Array): void;
  /** The connection is gone; `connection.error` holds the error code, if any. */
  closed(connection: LoadConnection): void;
  /** The connect attempt failed with this error code. */
  failed(connection: LoadConnection, code: string): void;
}

/** Where a transport connects. */
export interface TransportTarget {
  host: string;
  port: number;
  /** Local address to bind before connecting, or `null`. */
  source: string | null;
  /** Read buffer size for transports that bring their own (Deno). */
  readBytes: number;
}

/** A runtime's way of opening, writing and closing client sockets. */
export interface Transport {
  /** Which implementation, for the report. */
  readonly name: Runtime | "node:net";
  /** Starts connecting the slot; ends in `opened` or `failed`, then (if opened) `closed`. */
  connect(connection: LoadConnection): void;
  /**
   * Writes bytes, queueing what the kernel does not take. The bytes must not change afterwards
   * (the engine only writes slices of its constant request batch, so nothing is copied).
   */
  write(connection: LoadConnection, bytes: Uint8Array): void;
  /** Closes the connection; `closed` follows. */
  close(connection: LoadConnection): void;
}

/** Makes a transport bound to the engine's events. */
export type MakeTransport = (target: TransportTarget, events: TransportEvents) => Transport;

// Linux errno values that Deno reports only inside a message, e.g. "(os error 24)".
const ERRNO_NAMES: Record<string, string> = {
  "24": "EMFILE",
  "32": "EPIPE",
  "99": "EADDRNOTAVAIL",
  "104": "ECONNRESET",
  "110": "ETIMEDOUT",
  "111": "ECONNREFUSED",
};

/**
 * An error's code in the errno style (`ECONNREFUSED`) where the runtime gives one.
 *
 * @param error Anything thrown or passed to an error handler.
 * @returns A short code for the report's error table.
 */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string" && code.length > 0) return code;
  const name = (error as { name?: unknown })?.name;
  // Deno throws classes named after the error kind instead of errno codes.
  const denoCodes: Record<string, string> = {
    ConnectionRefused: "ECONNREFUSED",
    ConnectionReset: "ECONNRESET",
    ConnectionAborted: "ECONNABORTED",
    BrokenPipe: "EPIPE",
    AddrNotAvailable: "EADDRNOTAVAIL",
    AddrInUse: "EADDRINUSE",
    TimedOut: "ETIMEDOUT",
    NotConnected: "ENOTCONN",
  };
  if (typeof name === "string" && name in denoCodes) return denoCodes[name]!;
  if (typeof name === "string" && name !== "Error") return name;
  const message = (error as { message?: unknown })?.message;
  if (typeof message !== "string") return String(error);
  const errno = /os error (\d+)/.exec(message)?.[1];
  if (errno !== undefined && errno in ERRNO_NAMES) return ERRNO_NAMES[errno]!;
  return message.split("\n")[0]!.slice(0, 60);
}
