/**
 * The descriptor of a listener `Deno.listen` opens, which Deno does not say (Linux): so that it
 * can be quieted before it closes (_quiet_listener.ts), as Bun's are.
 *
 * A new socket takes the lowest free descriptor. So the lowest free one is found just before the
 * listen (`fcntl(F_DUPFD)` of an open descriptor, closed at once), and after it that descriptor
 * is taken as the listener's only if it is now a listening socket bound where the listener is
 * (`getsockopt(SO_ACCEPTCONN)`, `getsockname`: the family, address and port), all through Deno's FFI: two calls before the
 * listen and two after, whatever the process holds.
 *
 * Another thread may take that descriptor in between. One that accepts a connection or opens a
 * file makes it fail the check (then none is named, and the listener closes unquieted, as
 * before); one that opens a listener on the same address would pass it with its own, which is why
 * the threads of a process take turns (common/listen_turns.ts: a wait of at most
 * {@linkcode LOCK_WAIT_MS}, then none is named rather than the listen delayed). A thread that
 * took another's listener for its own would quiet that one when it closed its own: a listener
 * that drops every handshake's last ACK for as long as it stays open.
 *
 * Without FFI access (a Deno run without `--allow-ffi`), without a lock, or where no descriptor
 * 0 to 2 is open to copy, none is named. The permission is queried, never prompted for.
 *
 * @module
 */

import { endTurn, type ListenTurns, takeTurn } from "../common/listen_turns.ts";
import { type IpWords, parseIp } from "../limits/ip_key.ts";
import { LIBC_NAMES } from "./_libc.ts";

const SOL_SOCKET = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const SO_ACCEPTCONN = 30;
const F_DUPFD = 0;
/** The longest a thread waits for another's listen; it takes well under a millisecond. */
export const LOCK_WAIT_MS = 100;

const SYMBOLS = {
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: Symbols | null | undefined;

function load(): Symbols | null {
  if (libc !== undefined) return libc;
  libc = null;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return libc;
  } catch {
    return libc;
  }
  for (const name of LIBC_NAMES) {
    try {
      libc = Deno.dlopen(name, SYMBOLS).symbols;
      break;
    } catch {
      // Another name, or no glibc: none is named.
    }
  }
  return libc;
}

/** The lowest free descriptor now (a copy of 0, 1 or 2, closed at once), or -1. */
function lowestFree(calls: Symbols): number {
  for (const open of [0, 1, 2]) {
    const copy = calls.fcntl(open, F_DUPFD, 0);
    if (copy >= 0) {
      calls.close(copy);
      return copy;
    }
  }
  return -1;
}

/** Whether `fd` is a listening socket bound to `at` (IPv4 or IPv6: its address and port). */
function listensOn(calls: Symbols, fd: number, at: Deno.NetAddr): boolean {
  const value = new Uint8Array(4);
  const length = new Uint8Array(new Uint32Array([4]).buffer);
  if (calls.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, value, length) !== 0) return false;
  if (new DataView(value.buffer).getInt32(0, true) !== 1) return false;
  const address = new Uint8Array(128);
  const addressLength = new Uint8Array(new Uint32Array([address.length]).buffer);
  if (calls.getsockname(fd, address, addressLength) !== 0) return false;
  // struct sockaddr_in and sockaddr_in6: the family, then the port (network order), then the
  // address at byte 4 (IPv4) or 8 (IPv6). A Unix socket's path could read as any port.
  const view = new DataView(address.buffer);
  const family = view.getUint16(0, true);
  if ((family !== AF_INET && family !== AF_INET6) || view.getUint16(2, false) !== at.port) {
    return false;
  }
  const bound: IpWords = family === AF_INET
    ? [0, 0, 0xffff, view.getUint32(4, false)]
    : [0, 1, 2, 3].map((i) => view.getUint32(8 + i * 4, false)) as IpWords;
  const wanted = parseIp(at.hostname);
  return wanted !== null && wanted.every((word, i) => word === bound[i]);
}

/**
 * Calls `listen` and finds the descriptor of the listener it returns.
 *
 * @param turns The turns the process's threads take to listen; none is named without them.
 * @param listen Opens the listener (`Deno.listen`, `Deno.listenTls`).
 * @returns The listener, and its descriptor, or -1 when it cannot be told (see the module).
 */
export function listenWithDescriptor<L extends Deno.Listener>(
  turns: ListenTurns | undefined,
  listen: () => L,
): { listener: L; fd: number } {
  const calls = load();
  if (calls === null || turns === undefined || !takeTurn(turns, LOCK_WAIT_MS)) {
    return { listener: listen(), fd: -1 };
  }
  try {
    const lowest = lowestFree(calls);
    const listener = listen();
    const at = listener.addr as Deno.NetAddr;
    return { listener, fd: lowest >= 0 && listensOn(calls, lowest, at) ? lowest : -1 };
  } finally {
    endTurn(turns);
  }
}
