/**
 * The shape of a Unix datagram sender: one `AF_UNIX`/`SOCK_DGRAM` socket that sends whole
 * messages to one address, for systemd's `$NOTIFY_SOCKET` (server/systemd/notifier.ts). Neither
 * Bun 1.4 nor Deno 2.9 has such a socket in its own API (Bun's `udpSocket` and `node:dgram` are
 * UDP only; Deno's `listenDatagram` with `unixpacket` must bind a path of its own first and has no
 * abstract addresses), so both adapters call the C library through the runtime's FFI.
 *
 * @module
 */

/** A failed `socket(2)` or `sendto(2)`, with the C library's errno. */
export class UnixDatagramError extends Error {
  override name = "UnixDatagramError";
  /**
   * @param call The call that failed (`socket`, `sendto`, `dlopen`).
   * @param errno Its errno, or 0 when there is none (the C library could not be loaded).
   * @param detail What the runtime said, if anything.
   */
  constructor(readonly call: string, readonly errno: number, detail = "") {
    super(
      `${call} failed${errno === 0 ? "" : ` with errno ${errno}`}${detail ? `: ${detail}` : ""}`,
    );
  }
}

/** An open datagram socket, bound to nothing, that sends to one address. */
export interface UnixDatagramSender {
  /**
   * Sends one datagram without blocking: a receiver whose queue is full makes it fail (EAGAIN)
   * rather than stall the event loop.
   *
   * @param message The datagram.
   * @throws {UnixDatagramError} When the kernel refuses it.
   */
  send(message: Uint8Array): void;
  /** Closes the socket; later sends fail. */
  close(): void;
}

/**
 * Opens a sender on this runtime.
 *
 * @param address The destination's `struct sockaddr_un` bytes, exactly as long as `sendto` is to
 * be told (server/systemd/notify_address.ts).
 * @throws {UnixDatagramError} When the C library cannot be loaded or `socket(2)` fails.
 */
export type OpenUnixDatagram = (address: Uint8Array) => UnixDatagramSender;

// Linux's values, the same on x86-64 and arm64.
/** `AF_UNIX`. */
export const AF_UNIX = 1;
/** `SOCK_DGRAM | SOCK_CLOEXEC`: the serving processes and an upgrade's new tree never inherit it. */
export const SOCK_DGRAM_CLOEXEC = 2 | 0o2000000;
/** `MSG_DONTWAIT | MSG_NOSIGNAL`. */
export const SEND_FLAGS = 0x40 | 0x4000;
