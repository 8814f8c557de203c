/**
 * The Bun adapter of {@linkcode OpenUnixDatagram}: `socket(2)`, `sendto(2)` and `close(2)` from
 * the C library through `bun:ffi` (Bun 1.4.5 has no Unix datagram socket; see unix_datagram.ts).
 * One `sendto` costs a few microseconds (bench/notify_bench.ts).
 *
 * @module
 */

import { openLibc } from "./_libc.ts";
import {
  AF_UNIX,
  type OpenUnixDatagram,
  SEND_FLAGS,
  SOCK_DGRAM_CLOEXEC,
  UnixDatagramError,
} from "./unix_datagram.ts";

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
}

let loaded: { libc: Libc; errno(): number } | null = null;

function load(): { libc: Libc; errno(): number } {
  try {
    loaded ??= openLibc<Libc>({
      socket: { args: ["i32", "i32", "i32"], returns: "i32" },
      // ssize_t read as i32: a datagram this small never counts past 2^31, and -1 stays -1.
      sendto: { args: ["i32", "ptr", "u64", "i32", "ptr", "u32"], returns: "i32" },
      close: { args: ["i32"], returns: "i32" },
    }, "a Unix datagram socket");
  } catch (error) {
    throw new UnixDatagramError("dlopen", 0, (error as Error).message);
  }
  return loaded;
}

/** Opens an unbound `AF_UNIX` datagram socket that sends to `address`. */
export const openUnixDatagramBun: OpenUnixDatagram = (address) => {
  const { libc, errno } = load();
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
