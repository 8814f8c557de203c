/**
 * Client sockets through `node:net`, the one API that binds a source address
 * (`connect({ localAddress })`) on both Bun 1.4 and Deno 2.9; `Bun.connect` and `Deno.connect`
 * take no local address. Used only when `--source` is given, so its listeners (closures per
 * connection) stay off the default path.
 *
 * @module
 */

import { connect, type Socket } from "node:net";
import type { LoadConnection } from "../load_connection.ts";
import {
  errorCode,
  type Transport,
  type TransportEvents,
  type TransportTarget,
} from "./transport.ts";

class NodeTransport implements Transport {
  readonly name = "node:net";
  readonly #target: TransportTarget;
  readonly #events: TransportEvents;

  constructor(target: TransportTarget, events: TransportEvents) {
    this.#target = target;
    this.#events = events;
  }

  connect(connection: LoadConnection): void {
    const port = this.#target.port;
    const host = connection.target ?? this.#target.host;
    const source = connection.localAddress ?? this.#target.source;
    const events = this.#events;
    const socket = source === null
      ? connect({ host, port })
      : connect({ host, port, localAddress: source });
    let established = false;
    socket.setNoDelay(true);
    socket.once("connect", () => {
      established = true;
      connection.handle = socket;
      events.opened(connection);
    });
    socket.on("data", (chunk: Uint8Array) => events.received(connection, chunk));
    socket.on("error", (error) => {
      if (!established) return events.failed(connection, errorCode(error));
      connection.error ??= errorCode(error);
    });
    socket.once("close", () => {
      if (established) events.closed(connection);
    });
  }

  write(connection: LoadConnection, bytes: Uint8Array): void {
    // node:net queues what the kernel does not take; in flight is bounded by the depth.
    (connection.handle as Socket).write(bytes);
  }

  close(connection: LoadConnection): void {
    (connection.handle as Socket | null)?.destroy();
  }
}

/**
 * Makes the node:net transport.
 *
 * @param target Where to connect, and from which local address.
 * @param events The engine's handlers.
 * @returns The transport.
 */
export function nodeTransport(target: TransportTarget, events: TransportEvents): Transport {
  return new NodeTransport(target, events);
}
