/**
 * The capped admin relay's runtime part with `node:net`: on Bun always, and on Deno for a
 * listening socket passed down by an upgrade (`Deno.listen` cannot take a descriptor). Reads each
 * admitted connection's first request head, answers a probe itself, and relays the rest to the
 * inner HTTP server's Unix socket. (Deno binds with `_deno_relay.ts`: its `node:net` accept loop
 * stalled under descriptor pressure in our tests.)
 *
 * @module
 */

import type { Server, Socket } from "node:net";
import { nodeNet } from "../common/lazy_builtins.ts";
import type { RelayListen, RelayListenOptions } from "./capped_http.ts";
import type { Relay, RelayBook } from "./_relay_book.ts";
import { AddressInUseError } from "../host/address_in_use_error.ts";
import { listenerFdOf } from "./_listener_fd.ts";

function onClient(client: Socket, { path, book, answer }: RelayListenOptions): void {
  let upstream: Socket | null = null;
  const relay = book.admit(client.remoteAddress ?? "", () => {
    client.destroy();
    upstream?.destroy();
  });
  if (relay === null) {
    // Accepted and closed at once: the descriptor is back before the next accept.
    client.destroy();
    return;
  }
  client.on("data", (chunk: Buffer) => {
    const outcome = book.fromClient(relay, chunk);
    if (outcome === null) {
      if (upstream !== null && !upstream.write(chunk)) client.pause();
      return;
    }
    if (outcome.kind === "wait") return;
    if (outcome.kind !== "relay") {
      // What else it sends is read and dropped, so that its close is seen once it has the answer.
      const answering = outcome.kind === "probe"
        ? answer(outcome.head)
        : Promise.resolve(outcome.bytes);
      answering.then((bytes) => {
        if (relay.closed) return;
        book.fromServer(relay, bytes);
        client.end(bytes);
      }, () => book.release(relay));
      return;
    }
    upstream = relayTo(path, book, relay, client);
    if (!upstream.write(outcome.bytes)) client.pause();
  });
  // Half-open is allowed (a client may send its request and shut its side, as `nc -N` does),
  // so each end is passed on by hand; before the request is complete there is nothing to wait for.
  client.on("end", () => {
    if (upstream !== null) upstream.end();
    else if (relay.phase === "new" || relay.phase === "head") book.release(relay);
  });
  client.on("error", () => book.release(relay));
  client.on("close", () => book.release(relay));
}

function relayTo(path: string, book: RelayBook, relay: Relay, client: Socket): Socket {
  const inner = nodeNet().connect({ path });
  inner.on("data", (chunk: Buffer) => {
    book.fromServer(relay, chunk);
    if (!client.write(chunk)) inner.pause();
  });
  inner.on("drain", () => client.resume());
  client.on("drain", () => inner.resume());
  inner.on("end", () => client.end());
  inner.on("error", () => book.release(relay));
  inner.on("close", () => book.release(relay));
  return inner;
}

function serve(options: RelayListenOptions): Server {
  return nodeNet().createServer(
    { allowHalfOpen: true },
    (client: Socket) => onClient(client, options),
  );
}

async function listening(front: Server, listen: (done: () => void) => void): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    listen(() => {
      front.off("error", reject);
      resolve();
    });
  });
}

function watchAccepts(front: Server, book: RelayBook): void {
  // A failed accept (EMFILE from elsewhere in the process) must not end the process.
  front.on("error", (error: Error) => book.acceptFailed(error));
}

function closing(front: Server): Promise<void> {
  return new Promise<void>((resolve) => front.close(() => resolve()));
}

/** Listens on `hostname:port` and relays to `path`; see {@linkcode RelayListen}. */
export const relayNodeNet: RelayListen = async (options) => {
  const { hostname, port, book } = options;
  const front = serve(options);
  try {
    // Not reusePort: no other process may bind the admin port beside this one. A long listen
    // queue (the kernel caps it at net.core.somaxconn; Bun's default is 512), so that a flood
    // fills it less easily: a full queue drops newcomers' handshakes.
    await listening(
      front,
      (done) =>
        front.listen(
          { host: hostname, port, exclusive: true, reusePort: false, backlog: 4096 },
          done,
        ),
    );
  } catch (error) {
    if ((error as { code?: string }).code === "EADDRINUSE") {
      throw new AddressInUseError(
        `Cannot serve HTTP on ${hostname}:${port}: the address is in use`,
      );
    }
    throw error;
  }
  watchAccepts(front, book);
  const address = front.address();
  const bound = typeof address === "object" && address !== null ? address.port : port;
  const listenerFd = listenerFdOf(bound);
  return {
    port: bound,
    close: () => closing(front),
    // Used on Bun, whose spawn leaves the socket as it is: this server accepts on.
    handOff: listenerFd,
    takeBack: () => Promise.resolve(),
  };
};

/**
 * Accepts on the listening socket `options.fd` (passed down by an upgrade) and relays to `path`;
 * see {@linkcode RelayListen}. The port is the one asked for: the socket is bound to it.
 */
export const relayInheritedNodeNet: RelayListen = async (options) => {
  const fd = options.fd!;
  const server = serve(options);
  await listening(server, (done) => server.listen({ fd }, done));
  watchAccepts(server, options.book);
  return {
    // Deno 2.9.6 reports another port for a server listening on a descriptor; the caller knows it.
    port: options.port,
    close: () => closing(server),
    handOff: () => fd,
  };
};
