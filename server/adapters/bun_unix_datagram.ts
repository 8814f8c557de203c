/**
 * The Bun adapter of {@linkcode OpenUnixDatagram}: `socket(2)`, `sendto(2)` and `close(2)` from
 * the C library through `bun:ffi` (Bun 1.4.5 has no Unix datagram socket; see unix_datagram.ts).
 * One `sendto` costs a few microseconds (bench/notify_bench.ts).
 *
 * @module
 */

import {
  AF_UNIX,
  LIBC_NAMES,
  type OpenUnixDatagram,
  SEND_FLAGS,
  SOCK_DGRAM_CLOEXEC,
  UnixDatagramError,
} from "./unix_datagram.ts";

// The slice of bun:ffi used here, declared so that shared code never loads bun-types.
interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  sendto(
    fd: number,
    message: Uint8Array,
    length: number,
    flags: number,
    address: Uint8Array,
    addressLength: number,
  ): number;
  close(fd: number): number;
  __errno_location(): number;
}
interface BunFfi {
  dlopen(
    path: string,
    symbols: Record<keyof Libc, { args: string[]; returns: string }>,
  ): { symbols: Libc };
  read: { i32(pointer: number, offset?: number): number };
}

let loaded: { libc: Libc; ffi: BunFfi } | null = null;

// Loaded on first use through import.meta.require, as bun_file_lock.ts does: a static
// `import "bun:ffi"` would stop Deno from loading the adapters module at all.
function load(): { libc: Libc; ffi: BunFfi } {
  if (loaded) return loaded;
  const ffi = (import.meta as unknown as { require(id: string): BunFfi }).require("bun:ffi");
  let lastError: unknown = null;
  for (const name of LIBC_NAMES) {
    try {
      const libc = ffi.dlopen(name, {
        socket: { args: ["i32", "i32", "i32"], returns: "i32" },
        // ssize_t read as i32: a datagram this small never counts past 2^31, and -1 stays -1.
        sendto: { args: ["i32", "ptr", "u64", "i32", "ptr", "u32"], returns: "i32" },
        close: { args: ["i32"], returns: "i32" },
        __errno_location: { args: [], returns: "ptr" },
      }).symbols;
      loaded = { libc, ffi };
      return loaded;
    } catch (error) {
      lastError = error;
    }
  }
  throw new UnixDatagramError("dlopen", 0, (lastError as Error).message);
}

/** Opens an unbound `AF_UNIX` datagram socket that sends to `address`. */
export const openUnixDatagramBun: OpenUnixDatagram = (address) => {
  const { libc, ffi } = load();
  const errno = () => ffi.read.i32(libc.__errno_location());
  let fd = libc.socket(AF_UNIX, SOCK_DGRAM_CLOEXEC, 0);
  if (fd < 0) throw new UnixDatagramError("socket", errno());
  return {
    send(message) {
      if (fd < 0) throw new UnixDatagramError("sendto", 9, /* EBADF */ "the socket is closed");
      if (libc.sendto(fd, message, message.length, SEND_FLAGS, address, address.length) < 0) {
        throw new UnixDatagramError("sendto", errno());
      }
    },
    close() {
      // Once only: a second close could close an unrelated descriptor that reused the number.
      if (fd < 0) return;
      libc.close(fd);
      fd = -1;
    },
  };
};
