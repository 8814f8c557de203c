/**
 * The capped admin relay's runtime part on Bun: a `node:net` listener that relays each admitted
 * connection to the inner HTTP server's Unix socket. (Not used on Deno: there its `node:net`
 * accept loop stalled under descriptor pressure in our tests, see _deno_relay.ts.)
 *
 * @module
 */

import { connect, createServer, type Socket } from "node:net";
import type { RelayListen } from "./capped_http.ts";
import { AddressInUseError } from "../address_in_use_error.ts";

/** Listens on `hostname:port` and relays to `path`; see {@linkcode RelayListen}. */
export const relayNodeNet: RelayListen = async ({ hostname, port, path, book, reusePort }) => {
  const front = createServer((client: Socket) => {
    let upstream: Socket | null = null;
    const relay = book.admit(() => {
      client.destroy();
      upstream?.destroy();
    });
    if (relay === null) {
      // Accepted and closed at once: the descriptor is back before the next accept.
      client.destroy();
      return;
    }
    const inner = connect({ path });
    upstream = inner;
    client.on("data", (chunk: Buffer) => {
      book.fromClient(relay, chunk);
      if (!inner.write(chunk)) client.pause();
    });
    inner.on("data", (chunk: Buffer) => {
      book.fromServer(relay, chunk);
      if (!client.write(chunk)) inner.pause();
    });
    inner.on("drain", () => client.resume());
    client.on("drain", () => inner.resume());
    client.on("end", () => inner.end());
    inner.on("end", () => client.end());
    for (const socket of [client, inner]) {
      socket.on("error", () => book.release(relay));
      socket.on("close", () => book.release(relay));
    }
  });
  try {
    await new Promise<void>((resolve, reject) => {
      front.once("error", reject);
      // reusePort: an upgrade's new tree binds the admin port before the old one lets go of it.
      front.listen({ host: hostname, port, exclusive: true, reusePort }, () => {
        front.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    if ((error as { code?: string }).code === "EADDRINUSE") {
      throw new AddressInUseError(
        `Cannot serve HTTP on ${hostname}:${port}: the address is in use`,
      );
    }
    throw error;
  }
  // A failed accept (EMFILE from elsewhere in the process) must not end the process.
  front.on("error", (error: Error) => book.acceptFailed(error));
  const address = front.address();
  return {
    port: typeof address === "object" && address !== null ? address.port : 0,
    close: () => new Promise<void>((resolve) => front.close(() => resolve())),
  };
};
