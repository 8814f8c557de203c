/**
 * The descriptor of a listener `Deno.listen` opened, which Deno does not say (Linux): so that it
 * can be quieted before it closes (_quiet_listener.ts), as Bun's are.
 *
 * The descriptors open before and after the listen (`/proc/self/fd`: one directory read, no call
 * per descriptor) are compared, and of those that appeared the one listening on the port that was
 * bound is the listener's (`getsockopt(SO_ACCEPTCONN)` and `getsockname`, through Deno's FFI). A
 * connection another thread accepted in that moment is not listening; a listener another thread
 * of this process bound on the same port in that very moment makes two candidates, and then none
 * is named (the listener closes unquieted, as before). Without FFI or read access (a Deno run
 * without `--allow-ffi`/`--allow-read`) none is named either.
 *
 * @module
 */

import { LIBC_NAMES } from "./_libc.ts";

const SOL_SOCKET = 1;
const SO_ACCEPTCONN = 30;

const SYMBOLS = {
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  dup: { parameters: ["i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: Symbols | null | undefined;

function load(): Symbols | null {
  if (libc !== undefined) return libc;
  libc = null;
  for (const name of LIBC_NAMES) {
    try {
      libc = Deno.dlopen(name, SYMBOLS).symbols;
      break;
    } catch {
      // Another name, or no FFI access: none is named.
    }
  }
  return libc;
}

/**
 * The descriptors open in this process, or null where they cannot be read. The listing holds the
 * directory's own descriptor, closed once it is read, which the listen may then take: it is the
 * lowest free one when the read begins, found by taking (and giving back) the lowest free one
 * just before, and left out.
 */
function openDescriptors(calls: Symbols): Set<number> | null {
  const lowest = calls.dup(0);
  if (lowest >= 0) calls.close(lowest);
  try {
    const open = new Set<number>();
    for (const entry of Deno.readDirSync("/proc/self/fd")) open.add(Number(entry.name));
    open.delete(lowest);
    return open;
  } catch {
    return null;
  }
}

/** Whether `fd` is a listening socket bound to `port` (IPv4 or IPv6). */
function listensOn(calls: Symbols, fd: number, port: number): boolean {
  const value = new Uint8Array(4);
  const length = new Uint32Array([4]);
  if (calls.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, value, new Uint8Array(length.buffer)) !== 0) {
    return false;
  }
  if (new DataView(value.buffer).getInt32(0, true) !== 1) return false;
  // struct sockaddr_in and sockaddr_in6 both hold the port at bytes 2-3, in network order.
  const address = new Uint8Array(128);
  const addressLength = new Uint32Array([address.length]);
  if (calls.getsockname(fd, address, new Uint8Array(addressLength.buffer)) !== 0) return false;
  return new DataView(address.buffer).getUint16(2, false) === port;
}

/**
 * Calls `listen` and finds the descriptor of the listener it returns.
 *
 * @param listen Opens the listener (`Deno.listen`, `Deno.listenTls`).
 * @returns The listener, and its descriptor, or -1 when it cannot be told (see the module).
 */
export function listenWithDescriptor<L extends Deno.Listener>(
  listen: () => L,
): { listener: L; fd: number } {
  const calls = load();
  const before = calls === null ? null : openDescriptors(calls);
  const listener = listen();
  if (calls === null || before === null) return { listener, fd: -1 };
  const port = (listener.addr as Deno.NetAddr).port;
  const candidates = [...openDescriptors(calls) ?? []].filter((fd) =>
    !before.has(fd) && listensOn(calls, fd, port)
  );
  return { listener, fd: candidates.length === 1 ? candidates[0]! : -1 };
}
