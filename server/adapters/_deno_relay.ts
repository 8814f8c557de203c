/**
 * The capped admin relay's runtime part on Deno: `Deno.listen` on the public address, each
 * admitted connection relayed to the inner HTTP server's Unix socket with `Deno.connect`.
 *
 * Not `node:net`: under Deno 2.9.6 its accept loop stopped for good after a burst of connections
 * that were closed at once under a low open-file limit (no error was emitted; compare
 * denoland/deno#32941), while `Deno.listen` kept accepting.
 *
 * @module
 */

import type { RelayBook } from "./_relay_book.ts";
import type { RelayListen } from "./capped_http.ts";
import { AddressInUseError } from "../address_in_use_error.ts";

function closeQuietly(conn: Deno.Conn | null): void {
  try {
    conn?.close();
  } catch {
    // Already closed.
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
      for (let written = 0; written < read;) written += await to.write(chunk.subarray(written));
    }
    await to.closeWrite();
  } catch {
    // Closed by the other side, by a timeout, or by stop(): the relay is released below.
  }
}

async function relay(client: Deno.Conn, path: string, book: RelayBook): Promise<void> {
  let upstream: Deno.Conn | null = null;
  const entry = book.admit(() => {
    closeQuietly(client);
    closeQuietly(upstream);
  });
  if (entry === null) {
    // Accepted and closed at once: the descriptor is back before the next accept.
    closeQuietly(client);
    return;
  }
  try {
    upstream = await Deno.connect({ transport: "unix", path });
    if (entry.closed) return closeQuietly(upstream);
    const inner = upstream;
    await Promise.all([
      copy(client, inner, (chunk) => book.fromClient(entry, chunk)),
      copy(inner, client, (chunk) => book.fromServer(entry, chunk)),
    ]);
  } catch {
    // The inner server is gone (stopping).
  } finally {
    book.release(entry);
  }
}

/** Listens on `hostname:port` and relays to `path`; see {@linkcode RelayListen}. */
export const relayDeno: RelayListen = ({ hostname, port, path, book, reusePort }) => {
  let listener: Deno.Listener;
  try {
    // reusePort: an upgrade's new tree binds the admin port before the old one lets go of it.
    listener = Deno.listen({ hostname, port, reusePort });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      return Promise.reject(
        new AddressInUseError(`Cannot serve HTTP on ${hostname}:${port}: the address is in use`),
      );
    }
    return Promise.reject(error);
  }
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
      relay(conn, path, book);
    }
  })();
  return Promise.resolve({
    port: (listener.addr as Deno.NetAddr).port,
    close: async () => {
      closed = true;
      listener.close();
      await accepting;
    },
  });
};
