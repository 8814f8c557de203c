/**
 * The Deno adapter of {@linkcode OpenUnixDatagram}: `socket(2)`, `sendto(2)` and `close(2)` from
 * the C library through `Deno.dlopen` (stable in Deno 2.9 with `--allow-ffi`, which `-A` and the
 * compiled binary's `--allow-all` include). Deno's own `listenDatagram({ transport:
 * "unixpacket" })` would need a bound path of its own and cannot reach an abstract address.
 *
 * @module
 */

import { LIBC_NAMES } from "./_libc.ts";
import {
  AF_UNIX,
  type OpenUnixDatagram,
  SEND_FLAGS,
  SOCK_DGRAM_CLOEXEC,
  UnixDatagramError,
} from "./unix_datagram.ts";

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

let loaded: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | null = null;

function load(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  if (loaded) return loaded;
  let lastError: unknown = null;
  for (const name of LIBC_NAMES) {
    try {
      loaded = Deno.dlopen(name, SYMBOLS).symbols;
      return loaded;
    } catch (error) {
      lastError = error;
    }
  }
  throw new UnixDatagramError("dlopen", 0, (lastError as Error).message);
}

/** Opens an unbound `AF_UNIX` datagram socket that sends to `address`. */
export const openUnixDatagramDeno: OpenUnixDatagram = (address) => {
  const libc = load();
  const errno = () => {
    const pointer = libc.__errno_location();
    return pointer === null ? 0 : new Deno.UnsafePointerView(pointer).getInt32();
  };
  // Deno's FFI takes buffers backed by an ArrayBuffer of their own.
  const to = new Uint8Array(address);
  let fd = libc.socket(AF_UNIX, SOCK_DGRAM_CLOEXEC, 0);
  if (fd < 0) throw new UnixDatagramError("socket", errno());
  return {
    send(message) {
      if (fd < 0) throw new UnixDatagramError("sendto", 9, /* EBADF */ "the socket is closed");
      const sent = libc.sendto(fd, message, BigInt(message.length), SEND_FLAGS, to, to.length);
      if (Number(sent) < 0) throw new UnixDatagramError("sendto", errno());
    },
    close() {
      if (fd < 0) return;
      libc.close(fd);
      fd = -1;
    },
  };
};
