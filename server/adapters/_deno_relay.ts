/**
 * The capped admin relay's runtime part on Deno: `Deno.listen` on the public address; each
 * admitted connection's first request head is read, a probe answered here, the rest relayed to
 * the inner HTTP server's Unix socket with `Deno.connect`.
 *
 * Not `node:net`: under Deno 2.9.6 its accept loop stopped for good after a burst of connections
 * that were closed at once under a low open-file limit (no error was emitted; compare
 * denoland/deno#32941), while `Deno.listen` kept accepting. (A socket passed down by an upgrade
 * is the exception: `Deno.listen` cannot take a descriptor, see `_node_net_relay.ts`.)
 *
 * @module
 */

import type { RelayListen, RelayListenOptions } from "./capped_http.ts";
import type { Relay } from "./_relay_book.ts";
import { AddressInUseError } from "../host/address_in_use_error.ts";
import { listenerFdOf } from "./_listener_fd.ts";

function closeQuietly(conn: Deno.Conn | null): void {
  try {
    conn?.close();
  } catch {
    // Already closed.
  }
}

async function writeAll(to: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await to.write(bytes.subarray(written));
  }
}

async function copy(
  from: Deno.Conn,
  to: Deno.Conn,
  onBytes: (chunk: Uint8Array) => void,
): Promise<void> {
  const buffer = new Uint8Array(16 * 1024);
  try {
    for (;;) {
      const read = await from.read(buffer);
      if (read === null) break;
      const chunk = buffer.subarray(0, read);
      onBytes(chunk);
      await writeAll(to, chunk);
    }
    await to.closeWrite();
  } catch {
    // Closed by the other side, by a timeout, or by stop(): the relay is released below.
  }
}

/** Reads until the client closes (or the book closes it), dropping what it sends. */
async function drain(client: Deno.Conn, buffer: Uint8Array): Promise<void> {
  while ((await client.read(buffer)) !== null) {
    // A probe's connection owes nothing more.
  }
}

async function relay(client: Deno.Conn, options: RelayListenOptions): Promise<void> {
  const { book, path, answer } = options;
  let upstream: Deno.Conn | null = null;
  const source = (client.remoteAddr as Deno.NetAddr).hostname ?? "";
  const entry: Relay | null = book.admit(source, () => {
    closeQuietly(client);
    closeQuietly(upstream);
  });
  if (entry === null) {
    // Accepted and closed at once: the descriptor is back before the next accept.
    closeQuietly(client);
    return;
  }
  try {
    const buffer = new Uint8Array(16 * 1024);
    for (;;) {
      const read = await client.read(buffer);
      if (read === null) return;
      const outcome = book.fromClient(entry, buffer.subarray(0, read));
      if (outcome === null || outcome.kind === "wait") continue;
      if (outcome.kind !== "relay") {
        const bytes = outcome.kind === "probe" ? await answer(outcome.head) : outcome.bytes;
        if (entry.closed) return;
        book.fromServer(entry, bytes);
        await writeAll(client, bytes);
        await client.closeWrite();
        return await drain(client, buffer);
      }
      upstream = await Deno.connect({ transport: "unix", path });
      if (entry.closed) return closeQuietly(upstream);
      await writeAll(upstream, outcome.bytes);
      const inner = upstream;
      await Promise.all([
        copy(client, inner, (chunk) => book.fromClient(entry, chunk)),
        copy(inner, client, (chunk) => book.fromServer(entry, chunk)),
      ]);
      return;
    }
  } catch {
    // Closed by a timeout or by stop(), or the inner server is gone (stopping).
  } finally {
    book.release(entry);
  }
}

function bind(hostname: string, port: number): Deno.Listener {
  try {
    // Not reusePort: no other process may bind the admin port beside this one.
    return Deno.listen({ hostname, port, reusePort: false });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new AddressInUseError(
        `Cannot serve HTTP on ${hostname}:${port}: the address is in use`,
      );
    }
    throw error;
  }
}

/**
 * Listens on `hostname:port` and relays to `path`; see {@linkcode RelayListen}.
 *
 * Deno 2.9.6's spawn makes the socket blocking when an upgrade passes it on: see
 * `CappedHttpServer.handedOff` for what is done about it.
 */
export const relayDeno: RelayListen = (options) => {
  const { hostname, book } = options;
  let listener: Deno.Listener;
  try {
    listener = bind(hostname, options.port);
  } catch (error) {
    return Promise.reject(error);
  }
  const port = (listener.addr as Deno.NetAddr).port;
  let closed = false;
  const accepting = (async () => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closed || error instanceof Deno.errors.BadResource) return;
        // EMFILE from elsewhere in the process: an uncaught accept error would end it
        // (denoland/deno#10148); back off and accept again.
        book.acceptFailed(error as Error);
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      relay(conn, options);
    }
  })();
  const listenerFd = listenerFdOf(port);
  return Promise.resolve({
    port,
    close: async () => {
      closed = true;
      try {
        listener.close();
      } catch {
        // Closed already.
      }
      await accepting;
    },
    handOff: listenerFd,
  });
};
