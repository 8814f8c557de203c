/**
 * Client sockets on Bun with `Bun.connect`: one handler object for every socket, the slot's
 * state on `socket.data`, no closure or promise per connection beyond the one `Bun.connect`
 * returns. Faster than Bun's `node:net` by about 15 % in a closed loop on this project's
 * 2-core machine (Bun 1.4.5), which matters when one core must keep up with the server's.
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

// The few parts of Bun's API used here, declared so that shared code never loads bun-types.
interface BunSocket {
  data: LoadConnection;
  write(data: Uint8Array): number;
  end(): void;
  terminate(): void;
  setNoDelay?(noDelay: boolean): boolean;
}
interface BunSocketHandler {
  open(socket: BunSocket): void;
  data(socket: BunSocket, chunk: Uint8Array): void;
  drain(socket: BunSocket): void;
  close(socket: BunSocket): void;
  error(socket: BunSocket, error: Error): void;
  connectError(socket: BunSocket, error: Error): void;
}
interface BunConnect {
  connect(options: {
    hostname: string;
    port: number;
    data: LoadConnection;
    socket: BunSocketHandler;
  }): Promise<BunSocket>;
}

class BunTransport implements Transport {
  readonly name = "bun";
  readonly #target: TransportTarget;
  readonly #events: TransportEvents;
  readonly #bun: BunConnect;
  readonly #handler: BunSocketHandler;

  constructor(target: TransportTarget, events: TransportEvents) {
    this.#target = target;
    this.#events = events;
    this.#bun = (globalThis as unknown as { Bun: BunConnect }).Bun;
    this.#handler = {
      open: (socket) => {
        socket.setNoDelay?.(true);
        socket.data.handle = socket;
        events.opened(socket.data);
      },
      data: (socket, chunk) => events.received(socket.data, chunk),
      drain: (socket) => this.#drain(socket),
      close: (socket) => events.closed(socket.data),
      error: (socket, error) => {
        socket.data.error ??= errorCode(error);
      },
      connectError: (socket, error) => events.failed(socket.data, errorCode(error)),
    };
  }

  connect(connection: LoadConnection): void {
    // connectError reports the failure; the promise's rejection carries the same error.
    this.#bun.connect({
      hostname: connection.target ?? this.#target.host,
      port: this.#target.port,
      data: connection,
      socket: this.#handler,
    }).catch(() => {});
  }

  write(connection: LoadConnection, bytes: Uint8Array): void {
    const socket = connection.handle as BunSocket;
    if (connection.pendingWrites.length > 0) {
      connection.pendingWrites.push(bytes);
      return;
    }
    const written = socket.write(bytes);
    if (written < bytes.length) connection.pendingWrites.push(bytes.subarray(Math.max(0, written)));
  }

  #drain(socket: BunSocket): void {
    const queue = socket.data.pendingWrites;
    while (queue.length > 0) {
      const head = queue[0]!;
      const written = socket.write(head);
      if (written < head.length) {
        if (written > 0) queue[0] = head.subarray(written);
        return;
      }
      queue.shift();
    }
  }

  close(connection: LoadConnection): void {
    (connection.handle as BunSocket | null)?.end();
  }
}

/**
 * Makes the Bun transport.
 *
 * @param target Where to connect (a `source` address needs the node:net transport).
 * @param events The engine's handlers.
 * @returns The transport.
 */
export function bunTransport(target: TransportTarget, events: TransportEvents): Transport {
  return new BunTransport(target, events);
}
