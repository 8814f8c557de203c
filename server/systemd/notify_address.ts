/**
 * Where systemd listens for a service's notifications: `$NOTIFY_SOCKET`, turned into the
 * `struct sockaddr_un` bytes that `sendto(2)` takes, as sd_notify(3) builds them.
 *
 * A path (`/run/systemd/notify`) is sent with its terminating NUL; an abstract address
 * (`@/org/freedesktop/systemd1/notify/...`) has its `@` replaced by a leading NUL and no
 * terminating one, and its length says where it ends.
 *
 * @module
 */

/** The environment variable systemd sets for a `Type=notify` service. */
export const NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET";

// Linux's AF_UNIX and the size of sockaddr_un's sun_path.
const AF_UNIX = 1;
const SUN_PATH_BYTES = 108;
// sun_family, a sa_family_t (unsigned short) in the host's byte order.
const FAMILY_BYTES = 2;

/** A `$NOTIFY_SOCKET` that cannot be sent to (systemd 252 sets only paths and `@` names). */
export class NotifySocketError extends Error {
  override name = "NotifySocketError";
}

/**
 * The `sockaddr_un` for a `$NOTIFY_SOCKET` value, exactly as long as `sendto` must be told.
 *
 * @param value The variable's value, such as `/run/systemd/notify`.
 * @returns The address bytes: the family, then the path.
 * @throws {NotifySocketError} For a value that is neither an absolute path nor an `@` name, or
 * one too long for `sun_path`.
 * @example
 * ```ts
 * notifySocketAddress("/run/systemd/notify").length; // 2 + 19 + 1
 * ```
 */
export function notifySocketAddress(value: string): Uint8Array {
  const abstract = value.startsWith("@");
  if (!abstract && !value.startsWith("/")) {
    throw new NotifySocketError(
      `${NOTIFY_SOCKET_ENV} must be an absolute path or an abstract name starting with @: got ` +
        JSON.stringify(value),
    );
  }
  const name = new TextEncoder().encode(abstract ? value.slice(1) : value);
  // An abstract name's leading NUL and a path's terminating NUL each take one byte of sun_path.
  if (name.length + 1 > SUN_PATH_BYTES) {
    throw new NotifySocketError(
      `${NOTIFY_SOCKET_ENV} is longer than a Unix socket address can be ` +
        `(${SUN_PATH_BYTES - 1} bytes): got ${name.length} bytes`,
    );
  }
  const address = new Uint8Array(FAMILY_BYTES + 1 + name.length);
  address.set(new Uint8Array(new Uint16Array([AF_UNIX]).buffer), 0);
  // Abstract: NUL, then the name. Path: the name, then NUL. The array starts zeroed.
  address.set(name, abstract ? FAMILY_BYTES + 1 : FAMILY_BYTES);
  return address;
}
