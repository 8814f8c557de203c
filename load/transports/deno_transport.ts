/**
 * Client sockets on Deno with `Deno.connect`: one read loop per connection, and writes that
 * go out one at a time in order (a second write waits for the first). Faster than Deno's
 * `node:net` by about 25 % in a closed loop on this project's 2-core machine (Deno 2.9.6).
 *
 * @module
 */

import type { LoadConnection } from "../load_connection.ts";
import {
  errorCode,
  type Transport,
  type TransportEvents,
  type TransportTarget,
} from "./transport.ts";

const MAX_READ_BYTES = 256 * 1024;

class DenoTransport implements Transport {
  readonly name = "deno";
  readonly #target: TransportTarget;
  readonly #events: TransportEvents;

  constructor(target: TransportTarget, events: TransportEvents) {
    this.#target = target;
    this.#events = events;
  }

  connect(connection: LoadConnection): void {
    this.#run(connection);
  }

  async #run(connection: LoadConnection): Promise<void> {
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({
        hostname: connection.target ?? this.#target.host,
        port: this.#target.port,
        transport: "tcp",
      });
    } catch (error) {
      this.#events.failed(connection, errorCode(error));
      return;
    }
    conn.setNoDelay(true);
    connection.handle = conn;
    this.#events.opened(connection);
    let buffer = new Uint8Array(this.#target.readBytes);
    try {
      while (true) {
        const read = await conn.read(buffer);
        if (read === null) break;
        this.#events.received(connection, buffer.subarray(0, read));
        // A read that fills the buffer means the replies come faster than it holds.
        if (read === buffer.length && buffer.length < MAX_READ_BYTES) {
          buffer = new Uint8Array(buffer.length * 2);
        }
      }
    } catch (error) {
      // Closing the connection ourselves ends a pending read with BadResource or Interrupted.
      if (!connection.closing) connection.error ??= errorCode(error);
    }
    closeQuietly(conn);
    this.#events.closed(connection);
  }

  write(connection: LoadConnection, bytes: Uint8Array): void {
    if (connection.writing) {
      connection.pendingWrites.push(bytes);
      return;
    }
    this.#writeAll(connection, connection.handle as Deno.TcpConn, bytes);
  }

  async #writeAll(connection: LoadConnection, conn: Deno.TcpConn, first: Uint8Array) {
    connection.writing = true;
    let bytes: Uint8Array | undefined = first;
    try {
      while (bytes !== undefined) {
        let written = 0;
        while (written < bytes.length) written += await conn.write(bytes.subarray(written));
        bytes = connection.pendingWrites.shift();
      }
    } catch (error) {
      if (!connection.closing) connection.error ??= errorCode(error);
      closeQuietly(conn);
    } finally {
      connection.writing = false;
    }
  }

  close(connection: LoadConnection): void {
    const conn = connection.handle as Deno.TcpConn | null;
    if (conn !== null) closeQuietly(conn);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

/**
 * Makes the Deno transport.
 *
 * @param target Where to connect (a `source` address needs the node:net transport).
 * @param events The engine's handlers.
 * @returns The transport.
 */
export function denoTransport(target: TransportTarget, events: TransportEvents): Transport {
  return new DenoTransport(target, events);
}
